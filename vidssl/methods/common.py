"""Small pieces more than one method uses (functions, not a base class): augmenting and encoding
the elements of a tuple question, the encoder's normalisation, the momentum (EMA) update."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vidssl.data.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToModelLayout

__all__ = ["encode_elements", "crop_flip_augment", "norm_kwargs", "ema_update"]


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


def norm_kwargs(encoder: nn.Module | None) -> dict:
    """``{"mean": ..., "std": ...}`` of the encoder's ``preprocess`` (``{}`` without one: the
    pipelines then normalise with Kinetics' statistics)."""
    pre = getattr(encoder, "preprocess", None)
    return {} if pre is None else {"mean": tuple(pre.mean), "std": tuple(pre.std)}


@torch.no_grad()
def ema_update(pairs: Sequence[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """For each ``(source, target)``: ``target = momentum * target + (1 - momentum) * source``
    over parameters, and the source's buffers copied (BatchNorm statistics): a momentum
    encoder's update (MoCo, DINO)."""
    for src, dst in pairs:
        for ps, pt in zip(src.parameters(), dst.parameters()):
            pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
        for bs, bt in zip(src.buffers(), dst.buffers()):
            bt.copy_(bs)


def crop_flip_augment(p, encoder: nn.Module | None = None) -> Compose:
    """Random resized crop (``p.crop_size``, ``p.crop_scale``, ``p.crop_ratio``), horizontal flip
    (``p.flip_prob``), normalisation with the encoder's statistics (Kinetics' without one),
    model layout: the augmentation of VCOP and O3N."""
    return Compose([RandomResizedCrop(p.crop_size, scale=tuple(p.crop_scale), ratio=tuple(p.crop_ratio)),
                    RandomHorizontalFlip(p=p.flip_prob), Normalize(**norm_kwargs(encoder)), ToModelLayout()])
