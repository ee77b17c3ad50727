"""Small pieces more than one method uses (functions, not a base class)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vidssl.data.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToModelLayout

__all__ = ["encode_elements", "crop_flip_augment"]


def encode_elements(encoder: nn.Module, augment: nn.Module, views: Sequence[torch.Tensor], *,
                    per_element: bool) -> torch.Tensor:
    """Augment and encode the ``n`` elements of a tuple question (VCOP, O3N) in one encoder call.

    Args:
        views: ``n`` uint8 ``(B, T, C, H, W)`` tensors of equal ``T``.
        per_element: each element gets its own augmentation draw; otherwise one draw per video
            is shared by its elements (they are laid end to end in time for the draw).

    Returns:
        ``(B, n, D)`` pooled features, elements in the order given.
    """
    n, b, t = len(views), views[0].shape[0], views[0].shape[1]
    if any(v.shape != views[0].shape for v in views):
        raise ValueError(f"tuple elements must share one shape, got {[tuple(v.shape) for v in views]}")
    with torch.no_grad():
        if per_element:
            x = augment(torch.cat(views))                      # (n B, C, T, S, S): element, video
        else:
            x = augment(torch.cat(views, dim=1))               # (B, C, n T, S, S)
            x = torch.cat(x.split(t, dim=2))
    return encoder.forward_features(x).view(n, b, -1).transpose(0, 1)


def crop_flip_augment(p, encoder: nn.Module | None = None) -> Compose:
    """Random resized crop (``p.crop_size``, ``p.crop_scale``, ``p.crop_ratio``), horizontal flip
    (``p.flip_prob``), normalisation with the encoder's statistics (Kinetics' without one),
    model layout: the augmentation of VCOP and O3N."""
    pre = getattr(encoder, "preprocess", None)
    norm = {} if pre is None else {"mean": tuple(pre.mean), "std": tuple(pre.std)}
    return Compose([RandomResizedCrop(p.crop_size, scale=tuple(p.crop_scale), ratio=tuple(p.crop_ratio)),
                    RandomHorizontalFlip(p=p.flip_prob), Normalize(**norm), ToModelLayout()])
