"""Class vocabularies and per-class attribute descriptions shipped with vidssl.

Attribute files are JSON (``vidssl/resources/attributes/<vocabulary>.json`` or any path)::

    {
      "vocabulary": "ucf101",
      "template_version": "v1",
      "source": "curated" | "<backend>:<model id>",
      "note": "...",
      "classes": {"ApplyEyeMakeup": ["a brush and an eyeshadow palette", ...], ...}
    }

Every class of the vocabulary must appear, in any order; each value is a list of short visual
attribute phrases (objects, body motion, scene).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from vidssl.data.index.datasets import vocabulary as load_vocabulary  # noqa: F401 (re-export)
from vidssl.errors import ConfigError

VOCABULARIES = ("ucf101", "hmdb51", "kinetics400", "kinetics600", "synthetic", "diving48")


def _resource(*parts: str):
    return resources.files("vidssl").joinpath("resources", *parts)


def load_attributes(source: str | Path) -> dict:
    """Read an attribute file: a shipped vocabulary name (``"ucf101"``) or a path to a JSON file.

    Returns the parsed document (see the module docstring); ``doc["classes"]`` maps class name
    to a list of attribute phrases. Raises ConfigError naming the file on any format problem.
    """
    if isinstance(source, str) and source in VOCABULARIES:
        res = _resource("attributes", f"{source}.json")
        if not res.is_file():
            raise ConfigError(f"no curated attribute file is shipped for {source!r}")
        where, text = f"vidssl/resources/attributes/{source}.json", res.read_text(encoding="utf-8")
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"attribute file not found: {path}")
        where, text = str(path), _read_text(path, "attribute file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    classes = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(classes, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) for a in v) for v in classes.values()
    ):
        raise ConfigError(f"{where}: expected {{'classes': {{name: [attribute, ...]}}}}")
    return doc


def validate_attributes(doc: dict, class_names: list[str], *, where: str = "attribute file",
                        max_tokens: int = 77) -> None:
    """Check ``doc`` (from :func:`load_attributes`) against a vocabulary: every class present
    with at least one attribute, no unknown class, every phrase within ``max_tokens`` CLIP
    tokens. Raises :class:`ConfigError` naming the first problems."""
    from vidssl.language.clip_models import count_clip_tokens

    classes = doc.get("classes", {})
    missing = [c for c in class_names if not classes.get(c)]
    extra = sorted(set(classes) - set(class_names))
    if missing or extra:
        parts = ([f"{len(missing)} class(es) without attributes (e.g. {missing[:3]})"] if missing else []) + \
                ([f"{len(extra)} unknown class(es) (e.g. {extra[:3]})"] if extra else [])
        raise ConfigError(f"{where}: " + "; ".join(parts))
    for name, phrases in classes.items():
        for p in phrases:
            if not p.strip() or count_clip_tokens(p) > max_tokens:
                raise ConfigError(f"{where}: class {name!r}: attribute {p[:40]!r} is empty or over "
                                  f"{max_tokens} CLIP tokens")


def resolve_vocabulary(source: str | Path) -> list[str]:
    """Class names of ``source``: a shipped vocabulary (``ucf101`` ...), ``"synthetic"`` (the
    synthetic dataset's classes) or a text file with one class name per line."""
    if source == "synthetic":
        from vidssl.data.synthetic.classes import SYNTHETIC_CLASSES

        return list(SYNTHETIC_CLASSES)
    if isinstance(source, str) and source in VOCABULARIES:
        return load_vocabulary(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"vocabulary {str(source)!r} is neither a shipped one {VOCABULARIES} nor a file")
    names = [ln.strip() for ln in _read_text(path, "vocabulary file").splitlines() if ln.strip()]
    if not names:
        raise ConfigError(f"vocabulary file {path} holds no class names")
    return names


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from None
