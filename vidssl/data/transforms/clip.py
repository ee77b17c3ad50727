"""Per-sample, CPU-side resizing for the DataLoader (before collation).

Clips of one dataset may come in different frame sizes; :class:`ResizeClip` brings every clip
to a common size in the worker so that the default collate can stack them. It stays in uint8
(torchvision's antialiased bilinear resize has a fast uint8 path on CPU); the random
augmentations then run batched on the training device (:mod:`vidssl.data.transforms.video`).
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

__all__ = ["ResizeClip"]


def _size_arg(size: int | tuple[int, int], name: str) -> list[int]:
    out = [int(size)] if isinstance(size, int) else [int(s) for s in size]
    if len(out) not in (1, 2) or min(out) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return out


class ResizeClip:
    """Resize one clip ``(T, C, H, W)`` and optionally centre-crop it; keeps the dtype (uint8).

    Args:
        size: int: the short side becomes ``size`` (aspect kept); ``(h, w)``: exact size.
        crop_size: optional centre crop (int for a square or ``(h, w)``) after the resize.
        antialias: antialiased bilinear resize (torchvision's ``resize``).

    A plain callable (picklable), so it can be given to a dataset running in DataLoader workers.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        crop_size: int | tuple[int, int] | None = None,
        antialias: bool = True,
    ):
        self.size = _size_arg(size, "size")
        self.crop_size = None if crop_size is None else _size_arg(crop_size, "crop_size")
        if self.crop_size is not None and len(self.crop_size) == 1:
            self.crop_size = self.crop_size * 2
        self.antialias = antialias

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if not isinstance(clip, torch.Tensor) or clip.ndim != 4:
            shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
            raise ValueError(f"ResizeClip expects one clip (T, C, H, W), got {shape}")
        out = TF.resize(clip, self.size, antialias=self.antialias)
        if self.crop_size is not None:
            out = TF.center_crop(out, self.crop_size)
        return out

    def __repr__(self) -> str:
        return f"ResizeClip(size={self.size}, crop_size={self.crop_size}, antialias={self.antialias})"
