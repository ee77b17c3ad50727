"""Token masks of the masked-video methods: pure functions of a token grid and a random stream.

A clip of ``T`` frames and ``H x W`` pixels becomes a grid of ``(T / tubelet, H / patch,
W / patch)`` tokens, numbered in ``t, h, w`` order (the order in which the tubelet embedding
flattens its Conv3d output). Both functions draw from a ``torch.Generator`` (``None``: torch's
global CPU generator, so ``torch.manual_seed`` makes them repeatable and a checkpoint's RNG
state resumes them).

- :func:`tube_mask` -- VideoMAE (Tong et al., NeurIPS 2022), ``masking_generator.py``
  ``TubeMaskingGenerator``: ``int(ratio * H * W)`` positions of the spatial grid are masked and
  the same positions are masked in every time step (a "tube"), independently per clip.
- :func:`multiblock_masks` -- V-JEPA (Bardes et al., 2024), ``src/masks/multiblock3d.py``
  ``_MaskGenerator``: ``num_blocks`` spatio-temporal blocks of one size per batch (spatial
  scale, aspect ratio and temporal extent drawn once per call), each placed at its own uniform
  position per clip; their union is the prediction target, the rest the context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["tube_mask", "MultiBlockSpec", "multiblock_masks", "block_size", "MAX_DRAWS"]

#: Draws of one clip's blocks before :func:`multiblock_masks` gives up on finding any context.
MAX_DRAWS = 1000


def tube_mask(batch_size: int, grid: tuple[int, int, int], ratio: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """VideoMAE's tube masking.

    Args:
        batch_size: clips ``B``.
        grid: ``(T', H', W')`` tokens.
        ratio: fraction of each time step's ``H' W'`` positions that are masked
            (``int(ratio * H' * W')``, as the authors round).
        generator: the random stream.

    Returns:
        bool ``(B, T' H' W')``, True = masked; every clip masks the same number of tokens.
    """
    t, h, w = grid
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio!r}")
    per_frame = int(ratio * h * w)
    order = torch.rand((batch_size, h * w), generator=generator).argsort(dim=1)
    spatial = torch.zeros((batch_size, h * w), dtype=torch.bool)
    spatial.scatter_(1, order[:, :per_frame], True)
    return spatial.unsqueeze(1).expand(batch_size, t, h * w).reshape(batch_size, t * h * w)


@dataclass(frozen=True)
class MultiBlockSpec:
    """One V-JEPA mask generator (an entry of ``mask:`` in ``configs/pretrain/vitl16.yaml``).

    Attributes:
        num_blocks: blocks whose union is predicted (8 short-range, 2 long-range).
        spatial_scale: range of a block's area as a fraction of ``H' W'`` (0.15 / 0.7).
        temporal_scale: range of its extent as a fraction of ``T'`` (1.0: the whole clip).
        aspect_ratio: range of its height / width (0.75 - 1.5).
        max_temporal_keep: the context only spans the first ``max(1, int(T' x this))`` steps.
        max_keep: at most this many context tokens (``None``: no limit).
    """

    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    max_temporal_keep: float = 1.0
    max_keep: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise ValueError(f"num_blocks must be an int >= 1, got {self.num_blocks!r}")
        for name, lo_min in (("spatial_scale", 0.0), ("temporal_scale", 0.0), ("aspect_ratio", 0.0)):
            lo, hi = getattr(self, name)
            if not (lo_min < lo <= hi) or (name != "aspect_ratio" and hi > 1.0):
                raise ValueError(f"{name} must be a range (lo, hi) with 0 < lo <= hi"
                                 f"{' <= 1' if name != 'aspect_ratio' else ''}, got {(lo, hi)}")
        if not 0.0 < self.max_temporal_keep <= 1.0:
            raise ValueError(f"max_temporal_keep must be in (0, 1], got {self.max_temporal_keep!r}")


def block_size(spec: MultiBlockSpec, grid: tuple[int, int, int],
               generator: torch.Generator | None = None) -> tuple[int, int, int]:
    """One block size ``(t, h, w)`` in tokens (the authors' ``_sample_block_size``): temporal
    extent ``max(1, int(T' s_t))``, spatial area ``int(H' W' s)`` shaped by the aspect ratio
    ``a`` into ``h = round(sqrt(area a))``, ``w = round(sqrt(area / a))``, clipped to the grid."""
    duration, height, width = grid
    u = torch.rand(3, generator=generator).tolist()
    t_scale = spec.temporal_scale[0] + u[0] * (spec.temporal_scale[1] - spec.temporal_scale[0])
    t = max(1, int(duration * t_scale))
    s_scale = spec.spatial_scale[0] + u[1] * (spec.spatial_scale[1] - spec.spatial_scale[0])
    area = int(height * width * s_scale)
    aspect = spec.aspect_ratio[0] + u[2] * (spec.aspect_ratio[1] - spec.aspect_ratio[0])
    h = min(int(round(math.sqrt(area * aspect))), height)
    w = min(int(round(math.sqrt(area / aspect))), width)
    return t, h, w


def multiblock_masks(batch_size: int, grid: tuple[int, int, int], spec: MultiBlockSpec,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """V-JEPA's multi-block 3D masks for one generator and one batch.

    Per clip, ``spec.num_blocks`` blocks of the batch's size are placed uniformly (top, left,
    start); the tokens outside every block form the context, the tokens inside any block the
    target; a clip whose context came out empty draws its blocks again (the authors redraw
    without a limit; here at most :data:`MAX_DRAWS` times, then a ``ValueError``). As in the
    authors' collator, every clip then keeps the first ``min`` context and target indices over the
    batch (ascending token order), so the batch stacks.

    Returns:
        ``(context, target)``: long ``(B, K_ctx)`` and ``(B, K_tgt)`` token indices, ascending
        in each row, disjoint.
    """
    duration, height, width = grid
    t, h, w = block_size(spec, grid, generator)
    keep_t = max(1, int(duration * spec.max_temporal_keep))
    contexts, targets = [], []
    for _ in range(batch_size):
        for _ in range(MAX_DRAWS):
            keep = torch.ones(grid, dtype=torch.bool)
            for _ in range(spec.num_blocks):
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                start = int(torch.randint(0, duration - t + 1, (1,), generator=generator))
                keep[start:start + t, top:top + h, left:left + w] = False
            if keep_t < duration:
                keep[keep_t:] = False
            flat = keep.flatten()
            if flat.any():
                break
        else:
            raise ValueError(f"multi-block mask: {spec.num_blocks} blocks of {t}x{h}x{w} tokens left no context "
                             f"tokens on the {tuple(grid)} grid in {MAX_DRAWS} draws; use a smaller spatial_scale "
                             f"or fewer blocks")
        contexts.append(flat.nonzero().squeeze(1))
        targets.append((~flat).nonzero().squeeze(1))
    k_ctx = min(len(c) for c in contexts)
    if spec.max_keep is not None:
        k_ctx = min(k_ctx, spec.max_keep)
    k_tgt = min(len(x) for x in targets)
    return (torch.stack([c[:k_ctx] for c in contexts]), torch.stack([x[:k_tgt] for x in targets]))
