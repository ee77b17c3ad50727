"""Label propagation: exact copies on unique features, moving objects, keypoints, settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidssl.errors import ConfigError
from vidssl.track.adapter import build_adapter
from vidssl.track.metrics import region_iou
from vidssl.track.propagation import (PropagationConfig, heatmaps_to_keypoints,
                                      keypoints_to_heatmaps, propagate, propagate_keypoints,
                                      propagate_masks, radius_mask)


def unique_features(h: int, w: int, frames: int, shift: int = 0) -> torch.Tensor:
    """One-hot features (one channel per cell) on a grid that shifts ``shift`` cells right per
    frame (wrapping), so each cell's match is unambiguous."""
    base = torch.eye(h * w).reshape(h * w, h, w)
    return torch.stack([torch.roll(base, shifts=shift * t, dims=2) for t in range(frames)])


def test_radius_mask_counts():
    m = radius_mask(5, 5, 1.2)
    assert m.shape == (25, 25)
    assert int(m[12].sum()) == 5  # centre cell: itself + 4 neighbours
    assert int(m[0].sum()) == 3  # corner
    # strict distance < radius (CRW): at radius 2 the cells 2 away are out, the diagonals in
    assert int(radius_mask(5, 5, 2.0)[12].sum()) == 9
    assert int(radius_mask(5, 5, 1.0)[12].sum()) == 1
    row = radius_mask(1, 30, 12.0)[0]  # exactly 12 cells away: out (DAVIS-sized radius)
    assert bool(row[11]) and not bool(row[12])
    big = radius_mask(30, 30, 5.0)[15 * 30 + 15].reshape(30, 30)
    assert not bool(big[18, 19]) and not bool(big[20, 15])  # (3, 4) and (5, 0): exactly 5
    assert bool(big[18, 18]) and bool(big[19, 15])  # 4.24 and 4


def test_static_unique_features_copy_labels_exactly():
    feats = unique_features(6, 6, 4)
    labels = torch.rand(3, 6, 6)
    out = propagate(feats, labels, PropagationConfig(topk=1))
    for t in range(4):
        assert torch.allclose(out[t], labels, atol=1e-6)


def test_labels_follow_shifted_features():
    feats = unique_features(6, 8, 3, shift=1)
    labels = torch.zeros(1, 6, 8)
    labels[0, 2, 3] = 1.0
    out = propagate(feats, labels, PropagationConfig(radius=2))
    assert out[2, 0].argmax().item() == 2 * 8 + 5  # moved two cells right


def test_radius_limits_the_short_term_context():
    """Frame 1 copies frame 0 (it holds frame 0's features plus its own channels); frame 2 has
    only frame 1's own channels, shifted 5 cells right, so its one match is in frame 1, 5 cells
    away: out of reach at radius 2 (frame 0 offers nothing), in reach at radius 6."""
    a = unique_features(4, 12, 1)[0]  # (48, 4, 12), one channel per cell
    z = torch.zeros_like(a)
    f0 = torch.cat([a, z])
    f1 = torch.cat([a, a])  # normalised inside propagate: 0.71 to frame 0's same cell
    f2 = torch.cat([z, torch.roll(a, shifts=5, dims=2)])
    feats = torch.stack([f0, f1, f2])
    labels = torch.zeros(1, 4, 12)
    labels[0, 1, 1] = 1.0
    near = propagate(feats, labels, PropagationConfig(radius=2, num_context=1))
    far = propagate(feats, labels, PropagationConfig(radius=6, num_context=1))
    assert near[1, 0, 1, 1] > 0.99 and far[1, 0, 1, 1] > 0.99  # frame 1 copies frame 0
    assert near[2, 0, 1, 6] < 0.5 < far[2, 0, 1, 6]


def test_first_frame_is_matched_beyond_the_radius():
    """An object drifts 1 cell per frame, 6 cells in all, at radius 2: with only the first
    frame as context (matched globally, as CRW / UniTrack) it keeps its label; and when it
    jumps 5 cells between two frames, frame 0 still gives it back."""
    feats = unique_features(4, 12, 7, shift=1)
    labels = torch.zeros(1, 4, 12)
    labels[0, 1, 1] = 1.0
    out = propagate(feats, labels, PropagationConfig(radius=2, num_context=0))
    assert out[6, 0, 1, 7] > 0.99
    jump = torch.stack([feats[0], feats[0], torch.roll(feats[0], shifts=5, dims=2)])
    out = propagate(jump, labels, PropagationConfig(radius=2, num_context=1))
    assert out[2, 0, 1, 6] > 0.99


def test_moving_square_mask_with_pixel_features():
    frames = np.full((6, 64, 64, 3), 90, dtype=np.uint8)
    frames[..., 1] = np.arange(64, dtype=np.uint8)[None, :, None] * 2  # a vertical gradient
    gt = np.zeros((6, 64, 64), dtype=np.int64)
    for t in range(6):
        frames[t, 16:32, 8 + 4 * t:24 + 4 * t] = (240, 20, 20)
        gt[t, 16:32, 8 + 4 * t:24 + 4 * t] = 1
    pred = propagate_masks(build_adapter(pixels=True).encode_video(frames), gt[0])
    assert pred.shape == gt.shape and (pred[0] == gt[0]).all()
    assert region_iou(pred[-1] == 1, gt[-1] == 1) > 0.6


def test_keypoints_roundtrip_and_follow_features():
    pts = np.array([[20.0, 12.0], [44.0, 36.0]])
    maps = keypoints_to_heatmaps(pts, (48, 64), stride=8)
    assert maps.shape == (2, 6, 8)
    assert heatmaps_to_keypoints(maps, 8) == pytest.approx(pts, abs=1.0)
    feats = unique_features(6, 8, 3, shift=1)
    out = propagate_keypoints(feats, pts, (48, 64), stride=8)
    assert out.shape == (3, 2, 2)
    assert out[2, 0] == pytest.approx(pts[0] + [16, 0], abs=2.0)


def test_bad_settings_and_shapes():
    with pytest.raises(ConfigError):
        PropagationConfig(topk=0).validate()
    with pytest.raises(ConfigError):
        propagate(torch.zeros(2, 4, 5, 5), torch.zeros(1, 4, 4))
