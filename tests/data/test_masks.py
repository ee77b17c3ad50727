"""Token masks of the masked methods, tested like samplers: ratios, structure, ranges, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from vidssl.data.masks import MultiBlockSpec, block_size, multiblock_masks, tube_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- tube masking

@pytest.mark.parametrize("grid,ratio", [((8, 14, 14), 0.9), ((8, 14, 14), 0.75), ((4, 3, 3), 0.9), ((2, 2, 2), 0.5)])
def test_tube_mask_ratio_and_tubes(grid, ratio):
    t, h, w = grid
    mask = tube_mask(6, grid, ratio, gen(0))
    assert mask.shape == (6, t * h * w) and mask.dtype == torch.bool
    per_frame = int(ratio * h * w)                            # the authors' rounding
    assert (mask.sum(dim=1) == t * per_frame).all()
    cube = mask.view(6, t, h * w)
    assert (cube == cube[:, :1]).all(), "every time step masks the same positions (a tube)"


def test_tube_mask_is_deterministic_and_differs_per_clip():
    a = tube_mask(8, (8, 14, 14), 0.9, gen(3))
    assert torch.equal(a, tube_mask(8, (8, 14, 14), 0.9, gen(3)))
    assert not torch.equal(a, tube_mask(8, (8, 14, 14), 0.9, gen(4)))
    assert len({tuple(row.tolist()) for row in a}) == 8       # one draw per clip


def test_tube_mask_positions_are_uniform():
    counts = tube_mask(4000, (1, 4, 4), 0.5, gen(0)).float().mean(dim=0)
    assert counts.sub(0.5).abs().max() < 0.04


def test_tube_mask_rejects_a_full_mask():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tube_mask(1, (2, 2, 2), 1.0)


# --------------------------------------------------------------------------- multi-block masks

SHORT = MultiBlockSpec(num_blocks=8, spatial_scale=(0.15, 0.15))
LONG = MultiBlockSpec(num_blocks=2, spatial_scale=(0.7, 0.7))


@pytest.mark.parametrize("spec", [SHORT, LONG], ids=["short", "long"])
def test_multiblock_context_and_target_partition_the_kept_tokens(spec):
    grid = (8, 14, 14)
    ctx, tgt = multiblock_masks(5, grid, spec, gen(1))
    n = 8 * 14 * 14
    assert ctx.dtype == tgt.dtype == torch.long and ctx.shape[0] == tgt.shape[0] == 5
    for c, t in zip(ctx, tgt):
        assert torch.equal(c, c.sort().values) and torch.equal(t, t.sort().values)   # ascending
        assert not set(c.tolist()) & set(t.tolist())                                 # disjoint
        assert 0 <= int(c.min()) and int(max(c.max(), t.max())) < n
    assert ctx.shape[1] + tgt.shape[1] <= n


def test_blocks_are_full_tubes_of_the_drawn_size_before_truncation():
    """One clip: every target token lies in a (t, h, w) block of the batch's size, blocks span the
    whole clip in time (temporal scale 1), and the context is exactly the complement."""
    grid = (8, 14, 14)
    g = gen(5)
    size = block_size(SHORT, grid, gen(5))
    ctx, tgt = multiblock_masks(1, grid, SHORT, g)
    target = torch.zeros(grid, dtype=torch.bool).flatten()
    target[tgt[0]] = True
    target = target.view(grid)
    assert (target == target[:1]).all(), "temporal_scale 1: blocks cover every time step"
    assert size[0] == 8
    area = int(14 * 14 * 0.15)
    assert size[1] * size[2] == pytest.approx(area, abs=max(size[1], size[2]) + 1)
    assert len(ctx[0]) + len(tgt[0]) == 8 * 14 * 14


def test_block_size_follows_scale_and_aspect_ranges():
    spec = MultiBlockSpec(num_blocks=1, spatial_scale=(0.1, 0.4), temporal_scale=(0.25, 1.0), aspect_ratio=(0.5, 2.0))
    g = gen(0)
    for _ in range(300):
        t, h, w = block_size(spec, (16, 20, 20), g)
        assert 4 <= t <= 16                                   # max(1, int(16 x [0.25, 1]))
        area = h * w
        assert 0.1 * 400 * 0.6 <= area <= 0.4 * 400 * 1.4    # rounding of sqrt(area a), sqrt(area / a)
        assert 0.5 / 1.6 <= h / w <= 2.0 * 1.6


def test_block_size_matches_the_authors_formula():
    g1, g2 = gen(11), gen(11)
    t, h, w = block_size(LONG, (8, 14, 14), g1)
    u = torch.rand(3, generator=g2).tolist()
    area = int(14 * 14 * 0.7)
    aspect = 0.75 + u[2] * 0.75
    assert (t, h, w) == (8, min(14, int(round(math.sqrt(area * aspect)))), min(14, int(round(math.sqrt(area / aspect)))))


def test_multiblock_truncates_to_the_batch_minimum():
    ctx, tgt = multiblock_masks(16, (8, 14, 14), SHORT, gen(2))
    # every clip keeps the first k of its ascending indices; rows differ (their own positions)
    assert len({tuple(r.tolist()) for r in tgt}) > 1


def test_multiblock_max_keep_and_max_temporal_keep():
    spec = MultiBlockSpec(num_blocks=1, spatial_scale=(0.1, 0.1), max_temporal_keep=0.5, max_keep=20)
    ctx, tgt = multiblock_masks(3, (8, 6, 6), spec, gen(0))
    assert ctx.shape[1] <= 20
    assert int(ctx.max()) < 4 * 36, "the context only spans the first half of the clip"
    assert set(range(4 * 36, 8 * 36)) <= set(tgt[0].tolist()), "the rest of the clip is predicted"


def test_multiblock_is_deterministic():
    a = multiblock_masks(4, (8, 14, 14), LONG, gen(9))
    b = multiblock_masks(4, (8, 14, 14), LONG, gen(9))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = multiblock_masks(4, (8, 14, 14), LONG, gen(10))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_an_empty_context_is_drawn_again():
    """Four 2x2 blocks on a 3x3 grid cover it whole when they take the four distinct places
    (24 / 256 of draws); no clip comes back without context."""
    spec = MultiBlockSpec(num_blocks=4, spatial_scale=(0.5, 0.5), aspect_ratio=(1.0, 1.0))
    assert block_size(spec, (2, 3, 3)) == (2, 2, 2)
    ctx, tgt = multiblock_masks(50, (2, 3, 3), spec, gen(0))
    assert ctx.shape[1] >= 1


def test_blocks_that_always_cover_the_grid_are_an_error_not_a_hang():
    spec = MultiBlockSpec(num_blocks=2, spatial_scale=(0.9, 0.9), aspect_ratio=(1.0, 1.0))  # 3x3 of 3x3
    with pytest.raises(ValueError, match="left no context tokens"):
        multiblock_masks(1, (2, 3, 3), spec, gen(0))


@pytest.mark.parametrize("kwargs,match", [({"num_blocks": 0}, "num_blocks"), ({"spatial_scale": (0.0, 0.2)}, "spatial_scale"),
                                          ({"temporal_scale": (0.5, 1.5)}, "temporal_scale"),
                                          ({"aspect_ratio": (2.0, 1.0)}, "aspect_ratio"),
                                          ({"max_temporal_keep": 0.0}, "max_temporal_keep")])
def test_multiblock_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiBlockSpec(**kwargs)
