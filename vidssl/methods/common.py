"""Small pieces more than one method uses (functions, not a base class): augmenting and encoding
the elements of a tuple question, the encoder's normalisation, the momentum (EMA) update."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vidssl.data.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToModelLayout

__all__ = ["encode_elements", "crop_flip_augment", "norm_kwargs", "ema_update", "vit_layout"]


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


def vit_layout(encoder: nn.Module, method: str, num_frames: int, crop_size: int) -> dict:
    """What a masked method needs of a ViT encoder for clips of ``num_frames`` x ``crop_size``²:
    ``{"grid": (T', H', W'), "tubelet", "patch", "heads"}`` (``heads``: the encoder's attention
    heads, ``None`` when it does not say).

    Raises:
        ConfigError: the encoder has no token interface (``forward_tokens(x, bool_masked_pos)``,
            ``tubelet_size``, ``patch_size``: the ``videomae_*`` / ``vjepa2_*`` encoders), or the
            clip does not tile into its patches, or it has a fixed input size the clip misses.
    """
    from vidssl.errors import ConfigError

    name = getattr(encoder, "encoder_name", type(encoder).__name__)
    if not all(hasattr(encoder, a) for a in ("forward_tokens", "tubelet_size", "patch_size")):
        raise ConfigError(f"method {method!r} needs a ViT encoder with a token interface (videomae_*, "
                          f"vjepa2_*), got {name!r}")
    tubelet, patch = int(encoder.tubelet_size), int(encoder.patch_size)
    if num_frames % tubelet or crop_size % patch:
        raise ConfigError(f"method {method!r}: clips of {num_frames} frames x {crop_size} px do not tile into "
                          f"encoder {name!r}'s {tubelet} x {patch} x {patch} patches")
    fixed = (getattr(encoder, "num_frames", None), getattr(encoder, "image_size", None))
    if fixed[0] is not None and (fixed[0], fixed[1]) != (num_frames, crop_size):
        raise ConfigError(f"method {method!r}: encoder {name!r} takes {fixed[0]} frames x {fixed[1]} px (its position "
                          f"table is fixed); set the method's num_frames / crop_size to match or build the encoder "
                          f"with num_frames={num_frames}, image_size={crop_size}")
    rope = getattr(encoder, "rope_size", None)
    if rope is not None and rope != crop_size:
        raise ConfigError(f"method {method!r}: encoder {name!r} decodes masked tokens' rotary positions on a "
                          f"{rope} px grid; set the method's crop_size to {rope} or build the encoder with "
                          f"image_size={crop_size}")
    inner = getattr(encoder, "model", None) or getattr(encoder, "encoder", None)
    heads = getattr(getattr(inner, "config", None), "num_attention_heads", None)
    return {"grid": (num_frames // tubelet, crop_size // patch, crop_size // patch), "tubelet": tubelet,
            "patch": patch, "heads": heads}
