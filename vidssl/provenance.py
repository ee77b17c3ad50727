"""What every output says about where it came from: versions, commit, command line, machine.

:func:`provenance` is written into ``run.json`` and checkpoints (training), ``results.json``
(evaluation, tracking) and model cards (export). The command line is the one the CLI was called
with (:func:`set_command`, done by ``vidssl.cli.main``); from Python it is ``sys.argv``.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

_COMMAND: list[str] | None = None


def set_command(argv: Iterable[str] | None, prog: str = "vidssl") -> list[str] | None:
    """Record the command line being run (``prog`` + its arguments; ``None`` forgets it);
    returns the previous record, so a caller can restore it."""
    global _COMMAND
    previous, _COMMAND = _COMMAND, (None if argv is None else [prog, *argv])
    return previous


def command_line() -> str:
    """The recorded command line (shell-quoted), or ``sys.argv`` for Python entry points."""
    return shlex.join(_COMMAND if _COMMAND is not None else [os.path.basename(sys.argv[0]) or "python",
                                                             *sys.argv[1:]])


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """``git describe``-like id of the vidssl source when it is a git checkout (``abc1234`` or
    ``abc1234-dirty``); ``None`` for an installed wheel."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def provenance(**extra: Any) -> dict[str, Any]:
    """Versions, commit, command, machine and time, plus ``extra`` (seeds, run name, ...)."""
    import torch

    import vidssl

    info: dict[str, Any] = {
        "vidssl": vidssl.__version__, "commit": source_commit(), "torch": str(torch.__version__),
        "python": platform.python_version(), "command": command_line(),
        "host": socket.gethostname(), "platform": platform.platform(terse=True),
        "device": (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                   else f"cpu ({os.cpu_count()} cores)"),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra)
    return info


def versions_line(info: dict[str, Any]) -> str:
    """``vidssl 0.1.0 (abc1234), torch 2.14.1`` from a :func:`provenance` dict."""
    commit = f" ({info['commit']})" if info.get("commit") else ""
    return f"vidssl {info.get('vidssl')}{commit}, torch {info.get('torch')}"


def records_hash(rows: Iterable[tuple[str, int]]) -> str:
    """A short sha256 of ``(relative path, label)`` records in a fixed order: the list of videos a
    run actually used, comparable between machines (16 hex digits)."""
    h = hashlib.sha256()
    for path, label in sorted(rows):
        h.update(f"{path}\t{label}\n".encode("utf-8"))
    return h.hexdigest()[:16]
