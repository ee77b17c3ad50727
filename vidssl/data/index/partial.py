"""Partial downloads: the list of missing videos written to a file, and a hash of what was found.

Kinetics (YouTube takedowns) and other large datasets are rarely complete on disk. A builder
that passes ``root`` and ``missing_list`` to :func:`~vidssl.data.index.datasets.finish` gets:

* ``report.listed``: how many entries the annotation files list;
* ``report.missing_list``: a text file with the missing videos, one path relative to the root
  per line (default: ``<cache dir>/missing/<index name>-<root hash>.txt``);
* ``report.found_hash``: :func:`~vidssl.provenance.records_hash` of the videos the index
  holds (relative path, label), so two users can tell whether their copies agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Sequence, Union

from vidssl.data.index.metadata import cache_root
from vidssl.errors import ConfigError
from vidssl.provenance import records_hash

log = logging.getLogger("vidssl.data.index")

#: ``None``: the default file under the cache dir; a path (file or existing directory); ``False``
#: (or ``""``/``"none"``/``"off"``): do not write one.
MissingListArg = Union[str, os.PathLike, bool, None]

_OFF = ("", "none", "off", "false", "no")


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators (absolute when outside ``root``)."""
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def found_hash(items: Sequence[tuple[str, int]], root: str) -> str:
    """Hash of ``(path relative to root, label)`` pairs, independent of their order."""
    return records_hash([(relative(p, root), int(label)) for p, label in items])


def missing_list_path(arg: MissingListArg, name: str, root: str) -> str | None:
    """Where the missing list goes for ``arg`` (see :data:`MissingListArg`); ``None``: nowhere."""
    if arg is False or (isinstance(arg, str) and arg.strip().lower() in _OFF):
        return None
    if arg is True or arg is None:
        tag = hashlib.sha256(root.encode("utf-8")).hexdigest()[:8]
        return os.path.join(cache_root(), "missing", f"{name.replace('/', '_')}-{tag}.txt")
    if not isinstance(arg, (str, os.PathLike)):
        raise ConfigError(f"missing_list must be a path, None or False, not {arg!r}")
    path = os.path.abspath(os.path.expanduser(os.fspath(arg)))
    if os.path.isdir(path):
        path = os.path.join(path, f"{name.replace('/', '_')}.missing.txt")
    return path


def write_missing_list(missing: Sequence[str], root: str, dest: str | None) -> str | None:
    """Write ``missing`` (one path relative to ``root`` per line) to ``dest``; returns the path
    written, or ``None`` when there is nothing to write, no destination, or it cannot be written
    (a warning: a read-only cache never fails a build). An existing list is replaced."""
    if dest is None or not missing:
        return None
    try:
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        tmp = f"{dest}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(relative(p, root) + "\n" for p in missing)
        os.replace(tmp, dest)
    except OSError as err:
        log.warning("could not write the list of missing videos to %s: %s", dest, err.strerror or err)
        return None
    return dest
