"""Run directories that never overwrite and never mix (training, evaluation and tracking output).

A new run never writes into a directory that holds another run's outputs:

- ``if_exists="version"`` (the default) moves it to the next free ``OUT_v2``, ``OUT_v3`` ... and
  says so in one line;
- ``"error"`` refuses in one line that names ``--resume`` and ``--overwrite``;
- ``"overwrite"`` removes the earlier run's outputs (only the files a run writes) first.

Continuing a run (``resume``) uses the directory as it is. While a run writes, it holds an
exclusive lock on ``OUT/.vidssl.lock`` (``fcntl.flock``: released by the kernel when the process
dies, so a killed run never leaves a stale lock); a second run into the same directory fails at
once with one line naming the holder. Under DDP only rank 0 claims and locks; the chosen path is
broadcast, and every rank records it (so every rank sees a stage folder inside it as claimed).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import shutil
import socket
from typing import Iterator

from vidssl.errors import ConfigError, VidsslError
from vidssl.runtime import dist

log = logging.getLogger("vidssl")

LOCK_NAME = ".vidssl.lock"
IF_EXISTS = ("version", "error", "overwrite")
#: What runs write into their directory (an overwrite removes exactly these).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "tb", "config.yaml", "run.json", "wandb", "wandb_id.txt",
               "results.json", "results.md", "vis", "stage_done.json", "summary.json", "comparison.json",
               "comparison.md", "report.html")

#: absolute path -> the lock file descriptor this process holds on it; ``None`` on the other DDP
#: ranks, which write under rank 0's lock (every rank records the claim, so a stage folder inside
#: the run's folder is recognised on every rank and no rank waits for a broadcast rank 0 skips)
_HELD: dict[str, int | None] = {}


def _forget_locks_in_child() -> None:
    """A forked child (a DataLoader worker) closes its copies of the lock descriptors without
    unlocking: the parent keeps the lock, and when the parent dies (even by SIGKILL) the lock
    goes with it instead of living on in orphaned workers."""
    for fd in _HELD.values():
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def holds_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds another run's outputs (a checkpoint, metrics, a saved config,
    results), directly or in a stage sub-folder."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    if names & set(RUN_OUTPUTS):
        return True
    return any(os.path.isdir(os.path.join(path, n)) and holds_run(os.path.join(path, n))
               for n in names if not n.startswith("."))


def held_by_this_process(path: str | os.PathLike) -> bool:
    """Whether ``path`` or a folder above it is claimed by this process (a stage of a run)."""
    path = os.path.abspath(path)
    return any(path == held or path.startswith(held + os.sep) for held in _HELD)


def _lock(path: str) -> int:
    os.makedirs(path, exist_ok=True)
    lock_path = os.path.join(path, LOCK_NAME)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise VidsslError(f"{path} is in use by another run ({holder}); wait for it to finish or give "
                          f"this run another output folder") from None
    os.ftruncate(fd, 0)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode())
    return fd


def _next_version(path: str) -> str:
    n = 2
    while holds_run(f"{path}_v{n}") or _locked(f"{path}_v{n}"):
        n += 1
    return f"{path}_v{n}"


def _locked(path: str) -> bool:
    lock_path = os.path.join(path, LOCK_NAME)
    if not os.path.exists(lock_path):
        return False
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def remove_run_outputs(path: str) -> None:
    """Remove what runs write into ``path`` (and stage sub-folders holding runs), nothing else."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if name in RUN_OUTPUTS:
            shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
        elif os.path.isdir(full) and not name.startswith(".") and holds_run(full):
            shutil.rmtree(full)


def _choose(path: str, *, resume: bool, if_exists: str, what: str) -> str:
    if if_exists not in IF_EXISTS:
        raise ConfigError(f"if_exists must be one of {', '.join(IF_EXISTS)}, not {if_exists!r}")
    if _locked(path):  # a live run writes there: fail now, whatever the policy
        _lock(path)  # raises the one-line "in use by ..." message
    if resume or not holds_run(path):
        return path
    if if_exists == "error":
        raise VidsslError(f"{path} holds an earlier {what}: continue it with --resume, replace it with "
                          f"--overwrite, or choose another output folder")
    if if_exists == "overwrite":
        log.warning("%s: replacing the earlier %s's outputs (--overwrite)", path, what)
        remove_run_outputs(path)
        return path
    new = _next_version(path)
    log.warning("%s holds an earlier %s: this one writes to %s (--resume continues the earlier one, "
                "--overwrite replaces it)", path, what, new)
    return new


@contextlib.contextmanager
def claim_run_dir(path: str | os.PathLike, *, resume: bool = False, if_exists: str = "version",
                  what: str = "run") -> Iterator[str]:
    """Choose (see the module docstring) and lock the directory a run writes to; yields its path.
    A folder inside one this process already holds (a stage of a run) is yielded as it is."""
    path = os.path.normpath(os.fspath(path))
    if held_by_this_process(path):
        yield path
        return
    chosen, fd = [path], None
    if dist.is_main():
        try:
            chosen = [_choose(path, resume=resume, if_exists=if_exists, what=what)]
            fd = _lock(chosen[0])
        except VidsslError as err:  # sent to the other ranks too, instead of leaving them waiting
            chosen = [err]
        except OSError as err:  # a folder that cannot be made (missing parent, read-only, a file)
            chosen = [ConfigError(f"cannot create the {what} folder {path}: "
                                  f"{err.strerror or err}{f' ({err.filename})' if err.filename else ''}")]
    if dist.is_distributed():  # rank 0's choice (or its error) for every rank
        import torch.distributed

        torch.distributed.broadcast_object_list(chosen, src=0)
    if isinstance(chosen[0], BaseException):
        raise chosen[0]
    path = chosen[0]
    key = os.path.abspath(path)
    _HELD[key] = fd
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        if fd is not None:  # the lock file stays (unlinking it could let two later runs both lock)
            os.close(fd)


def source_label(*, origin: dict | None = None, encoder: str | None = None, pretrained: str | None = None,
                 seed: int = 0) -> str:
    """A folder-safe name for what an evaluation or tracking run looks at: ``<run>_step<N>`` for
    a checkpoint (``origin``: :func:`vidssl.models.checkpoint.checkpoint_origin`),
    ``<encoder>[_<weights>]``, ``_seed<S>`` for a random init, or an exported folder's name."""
    if origin is not None:
        return f"{str(origin['run']).replace('/', '-')}_step{origin['step']}"
    weights = os.path.basename(os.path.normpath(str(pretrained))) if pretrained else ""
    if not encoder:
        return weights
    return f"{encoder}_{weights}" if weights else f"{encoder}_seed{seed}"


def add_result_options(p, *, config_of: str, out_default: str, overrides_example: str) -> None:
    """The options ``vidssl eval`` and ``vidssl track`` share: ``--out`` (named after what is
    evaluated by default, never overwritten), ``--overwrite``, ``--seed``, ``--device``,
    ``--config``, ``--quiet`` and the trailing ``KEY=VALUE`` overrides."""
    p.add_argument("--out", default=None,
                   help=f"output folder (default: {out_default}); a folder holding earlier results is "
                        "never overwritten: the next free <out>_vN is used")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the random init of an encoder without weights (%(default)s)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: config's)")
    p.add_argument("--config", help=f"YAML file (or shipped config name) of {config_of} settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"settings, e.g. {overrides_example}")

