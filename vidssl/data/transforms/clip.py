"""Per-sample, CPU-side resizing for the DataLoader (before collation).

Clips of one dataset may come in different frame sizes; :class:`ResizeClip` brings every clip
to a common size in the worker so that the default collate can stack them. It stays in uint8
(torchvision's antialiased bilinear resize has a fast uint8 path on CPU); the random
augmentations then run batched on the training device (:mod:`vidssl.data.transforms.video`).
:func:`clip_transform` is the config's spatial policy (``data.resize``, ``data.crop``).
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

from vidssl.errors import ConfigError

__all__ = ["ResizeClip", "clip_transform"]


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


def clip_transform(resize: int | None = None, crop: int | None = None) -> ResizeClip | None:
    """The data path's spatial policy as a per-clip CPU transform (``data.resize``,
    ``data.crop``):

    * neither: clips keep the decoded size (every video of the dataset must share it);
    * ``resize`` only: the short side becomes ``resize``, aspect kept (videos of one aspect
      ratio batch; mixed aspect ratios do not);
    * ``crop`` (with ``resize`` defaulting to ``crop``): short side to ``resize``, then the
      centre ``crop x crop`` square: any mix of sizes and aspect ratios batches.

    Raises:
        ConfigError: a non-positive size, or ``resize < crop``.
    """
    for name, value in (("data.resize", resize), ("data.crop", crop)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name} must be a positive integer (pixels) or null, not {value!r}")
    if crop is None:
        return None if resize is None else ResizeClip(resize)
    resize = crop if resize is None else resize
    if resize < crop:
        raise ConfigError(f"data.resize ({resize}) must be at least data.crop ({crop}): the crop "
                          "is cut from the frame resized to that short side")
    return ResizeClip(resize, crop_size=crop)
