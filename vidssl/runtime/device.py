"""Which device a run uses and which autocast dtype it computes in (one definition of each)."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from vidssl.errors import ConfigError

__all__ = ["resolve_device", "autocast_dtype", "autocast", "dist_device"]


def resolve_device(device: str | torch.device | None = "auto", *, key: str = "device") -> torch.device:
    """``"auto"`` / ``None``: CUDA when present, else the CPU; otherwise ``torch.device(device)``.

    Raises:
        ConfigError: a string torch does not read as a device, or CUDA asked for but absent
            (``key`` names the setting in the message, e.g. ``train.device``).
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"bad {key} {device!r}: {' '.join(str(err).split())}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={device} but no CUDA device is available")
    return dev


def autocast_dtype(amp: str, device: torch.device, *, key: str = "amp") -> torch.dtype | None:
    """bf16 where it is supported and asked for; ``auto`` means CUDA with bf16 only (CPU bf16
    autocast is slow on most CPUs and changes numerics for no gain there); ``off``: none."""
    if amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"{key} must be auto, bf16 or off, got {amp!r}")
    if amp == "off":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.bfloat16 if amp == "bf16" else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` in ``dtype`` on ``device``'s type, or a no-op for ``None``."""
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def dist_device() -> torch.device:
    """The device collectives of this process run on (nccl needs CUDA tensors)."""
    import torch.distributed as tdist

    if tdist.is_initialized() and tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
