"""Checkpoint files: one file per save, written atomically, loadable with ``weights_only=True``;
and rebuilding what they hold (:func:`load_encoder`, :func:`load_module_state`).

Beside the models so that evaluation, tracking, CoCLR's frozen network, the demo and the
comparison read checkpoints without importing the trainer.

A checkpoint is a dict of tensors and plain Python values::

    format        "vidssl-checkpoint-1"
    model         the method's state dict (encoder + heads + buffers such as queues)
    encoder       the encoder's state dict alone (what evaluation and export need)
    encoder_spec  {"name": ..., "kwargs": {...}} to rebuild the encoder with create_encoder
    optimizer, scheduler, step, epoch, batch_in_epoch
    rng           {"torch": ByteTensor, "cuda": [ByteTensor, ...]} of rank 0
    rng_per_rank  the same for every rank, in rank order (each rank resumes its own streams)
    config        the resolved PretrainConfig as a plain dict
    skipped       unreadable videos skipped so far
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from typing import Any, Mapping

import torch
from torch import nn

from vidssl.errors import VidsslError

FORMAT = "vidssl-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> str:
    """Write ``state`` to ``path`` via a temporary file in the same folder and a rename, so a
    crash mid-write never leaves a truncated checkpoint where a good one was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide checkpoints from the group
        with os.fdopen(fd, "wb") as f:
            writer = _Writer(f)
            try:
                torch.save({"format": FORMAT, **state}, writer)
            except RuntimeError:  # torch reports a failed write as "unexpected pos": say why
                if writer.error is not None:
                    raise writer.error from None
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):  # full disk, quota, read-only mount: say where, keep the old one
            kept = "the previous checkpoint is intact" if os.path.exists(path) else "no earlier checkpoint"
            raise VidsslError(f"could not write checkpoint {path}: {err.strerror or err} ({kept})") from None
        raise
    return path


class _Writer:
    """The file ``torch.save`` writes to, keeping the first ``OSError`` a write raised."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.f.flush()


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a vidssl checkpoint with ``weights_only=True`` (no code runs on load).

    Raises:
        VidsslError: missing file, not a checkpoint, or not a vidssl checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VidsslError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # neither torch.save format
        what = "an empty file" if not head else "not a torch.save file"
        raise VidsslError(f"{path} is not a checkpoint ({what}); vidssl checkpoints are "
                          f"OUT_DIR/checkpoints/last.pt of a vidssl pretrain run")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, IO errors of many kinds
        if type(err).__name__ == "UnpicklingError":  # safe loading refused a Python object
            raise VidsslError(f"{path} holds Python objects that safe loading refuses: it is not a "
                              f"vidssl checkpoint (vidssl writes tensors and plain values only)") from None
        reason = " ".join(str(err).split()).split(". ")[0][:200]
        raise VidsslError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise VidsslError(f"{path} is not a vidssl checkpoint (expected format {FORMAT!r})")
    return state


def load_encoder(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the encoder saved in a checkpoint (architecture from ``encoder_spec``)."""
    from vidssl.models.encoders import create_encoder

    state = load_checkpoint(path, map_location)
    spec = state.get("encoder_spec") or {}
    if "name" not in spec or "encoder" not in state:
        raise VidsslError(f"checkpoint {os.fspath(path)} holds no encoder")
    encoder = create_encoder(spec["name"], **dict(spec.get("kwargs") or {}))
    try:
        encoder.load_state_dict(state["encoder"])
    except RuntimeError as err:
        raise VidsslError(f"checkpoint {os.fspath(path)} does not fit encoder {spec['name']!r}: "
                          f"{' '.join(str(err).split())[:200]}") from None
    return encoder.to(map_location)


def submodule_state(model_state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a method's state dict (a checkpoint's ``model``) under ``prefix.``, with
    the prefix removed: what ``method.<prefix>.load_state_dict`` takes."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in model_state.items() if k.startswith(prefix + ".")}


def load_submodule(module: nn.Module, model_state: Mapping[str, torch.Tensor], prefix: str, where: str) -> None:
    """Load :func:`submodule_state` into ``module`` strictly; a mismatch is one line naming
    ``where`` (e.g. ``init_checkpoint PATH``) and the part."""
    try:
        module.load_state_dict(submodule_state(model_state, prefix))
    except RuntimeError as err:
        raise VidsslError(f"{where}: its {prefix} does not fit this network: "
                          f"{' '.join(str(err).split())[:160]}") from None


def checkpoint_origin(path: str | os.PathLike) -> dict[str, Any]:
    """Where a checkpoint comes from, for naming and labelling what is made from it: ``run``
    (its run folder's name; ``<run>/<stage>`` for a stage of a multi-stage run), ``step``,
    ``method``, ``dataset``, and the training run's ``provenance`` when it was recorded."""
    state = load_checkpoint(path)
    cfg = state.get("config") or {}
    out_dir = (cfg.get("train") or {}).get("out_dir") or os.path.dirname(os.path.dirname(os.path.abspath(path)))
    parts = os.path.normpath(out_dir).split(os.sep)
    run = "/".join(parts[-2:]) if parts[-1].startswith("stage") and len(parts) > 1 else parts[-1]
    return {"run": run, "step": state.get("step"), "method": (cfg.get("method") or {}).get("name"),
            "dataset": (cfg.get("data") or {}).get("dataset"), "provenance": state.get("provenance")}
