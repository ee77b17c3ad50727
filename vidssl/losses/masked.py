"""Losses of the masked-video methods: VideoMAE's pixel reconstruction and V-JEPA's latent L1.

- :func:`patchify` / :func:`unpatchify`: a clip as its tubelet patches and back.
- :func:`pixel_targets`: VideoMAE's targets, the ``[0, 1]`` pixels of every tubelet patch,
  per-patch normalised (``normlize_target=True``): each channel of a patch minus its mean over
  the patch's ``tubelet x patch x patch`` pixels, divided by their (unbiased) standard deviation
  + 1e-6 (``engine_for_pretraining.py``).
- :func:`masked_mse`: mean squared error over the masked patches' values (``nn.MSELoss`` on the
  predictions of the masked tokens).
- :func:`jepa_loss`: V-JEPA's ``loss_fn``: per mask ``mean(|z - h|^p) / p`` (``loss_exp`` p = 1:
  L1), averaged over the masks (``app/vjepa/train.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["patchify", "unpatchify", "pixel_targets", "masked_mse", "jepa_loss"]


def patchify(x: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B, N, tubelet * patch * patch, C)`` with tokens in ``t, h, w``
    order and each patch's pixels in ``(dt, dy, dx)`` order (the authors' ``rearrange(..., 'b c
    (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c')``).

    Shape:
        ``T``, ``H``, ``W`` multiples of ``tubelet``, ``patch``, ``patch``.
    """
    b, c, t, h, w = x.shape
    if t % tubelet or h % patch or w % patch:
        raise ValueError(f"clip {tuple(x.shape)} does not tile into {tubelet}x{patch}x{patch} patches")
    x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)               # b, t', h', w', p0, p1, p2, c
    return x.reshape(b, (t // tubelet) * (h // patch) * (w // patch), tubelet * patch * patch, c)


def unpatchify(p: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(B, N, tubelet * patch * patch, C)`` -> ``(B, C, T, H, W)``."""
    b, n, _, c = p.shape
    t, h, w = grid
    if n != t * h * w:
        raise ValueError(f"{n} patches do not fill a {grid} grid")
    x = p.reshape(b, t, h, w, tubelet, patch, patch, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, c, t * tubelet, h * patch, w * patch)


def pixel_targets(x01: torch.Tensor, tubelet: int, patch: int, normalize: bool = True,
                  eps: float = 1e-6) -> torch.Tensor:
    """VideoMAE's reconstruction targets of a clip in ``[0, 1]``.

    Args:
        x01: ``(B, C, T, H, W)`` un-normalised pixels.
        normalize: per-patch normalisation (the default, as the authors).

    Returns:
        ``(B, N, tubelet * patch * patch * C)``: per patch its pixels, each pixel's channels
        together (``(p0 p1 p2 c)`` order).
    """
    p = patchify(x01, tubelet, patch)
    if normalize:
        p = (p - p.mean(dim=-2, keepdim=True)) / (p.var(dim=-2, unbiased=True, keepdim=True).sqrt() + eps)
    return p.flatten(2)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens.

    Shape:
        - pred: ``(B, M, P)``, the decoder's outputs for the ``M`` masked tokens of each clip, in
          ascending token order.
        - target: ``(B, N, P)``, every token's target.
        - mask: bool ``(B, N)``, True = masked, ``M`` per clip.
    """
    b = target.shape[0]
    chosen = target[mask].reshape(b, -1, target.shape[-1])
    if chosen.shape != pred.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} do not match the masked targets {tuple(chosen.shape)}")
    return torch.mean((pred.float() - chosen.float()) ** 2)


def jepa_loss(preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], loss_exp: float = 1.0) -> torch.Tensor:
    """V-JEPA's prediction loss: ``mean_masks [ mean(|z - h|^p) / p ]``.

    Shape:
        preds, targets: one ``(B, K_m, D)`` pair per mask (predicted and target features of the
        ``K_m`` target tokens of mask ``m``).
    """
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"need one target per prediction, got {len(preds)} and {len(targets)}")
    if not loss_exp > 0:
        raise ValueError(f"loss_exp must be > 0, got {loss_exp!r}")
    loss = 0.0
    for z, h in zip(preds, targets):
        loss = loss + torch.mean(torch.abs(z.float() - h.float()) ** loss_exp) / loss_exp
    return loss / len(preds)
