"""On-disk caches written atomically: a crash mid-write never leaves a broken entry behind.

``atomic_write_bytes`` writes a temporary file in the target's folder, fsyncs it and
``os.replace``-s it over the target, so readers see the old content or the new, never half.

:class:`PromptCache` keeps one JSON file per answer, keyed by the SHA-256 of (backend, model id,
template version, decoding settings, class name). Only parsed, valid attribute lists are stored
(bad LLM output never reaches the cache); an unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("vidssl")


def default_cache_dir(kind: str) -> Path:
    """``$VIDSSL_CACHE_DIR/<kind>`` or ``~/.cache/vidssl/<kind>``."""
    from vidssl.data.index.metadata import cache_root

    return Path(cache_root()) / kind


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def cache_key(**parts: Any) -> str:
    """SHA-256 hex of the parts as canonical JSON (sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class PromptCache:
    """Attribute lists by (backend, model id, template version, decoding, class name)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_cache_dir("prompts")

    @staticmethod
    def key(backend: str, model_id: str, template_version: str, decoding: dict[str, Any], class_name: str,
            vocabulary: str = "custom") -> str:
        """Everything that changes the answer: the prompt names the vocabulary too."""
        return cache_key(backend=backend, model_id=model_id, template_version=template_version,
                         decoding=decoding, class_name=class_name, vocabulary=vocabulary)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[list[str]]:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            value = json.loads(p.read_text(encoding="utf-8"))["attributes"]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("prompt cache entry %s is unreadable; regenerating it", p)
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return None
        return value

    def put(self, key: str, attributes: list[str], meta: dict[str, Any] | None = None) -> Path:
        doc = {"attributes": list(attributes), **(meta or {})}
        return atomic_write_bytes(self.path(key), json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))
