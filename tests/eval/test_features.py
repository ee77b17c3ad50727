"""Feature extraction on real synthetic videos: shapes, determinism, crops, a corrupt file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tests.eval.conftest import CLIPS
from vidssl.data.index import build_index
from vidssl.eval.features import extract_features, spatial_crops
from vidssl.errors import ConfigError


def test_spatial_crops_positions():
    frame = torch.arange(4 * 6).view(1, 4, 6)           # H = 4, W = 6 (landscape)
    left, centre, right = spatial_crops(frame, 4, 3)
    assert torch.equal(left, frame[..., :, 0:4]) and torch.equal(right, frame[..., :, 2:6])
    assert torch.equal(centre, frame[..., :, 1:5])
    (only,) = spatial_crops(frame, 2, 1)
    assert torch.equal(only, frame[..., 1:3, 2:4])
    tall = frame.transpose(1, 2).contiguous()            # H = 6, W = 4 (portrait): along H
    top, _, bottom = spatial_crops(tall, 4, 3)
    assert torch.equal(top, tall[..., 0:4, :]) and torch.equal(bottom, tall[..., 2:6, :])
    with pytest.raises(ConfigError):
        spatial_crops(frame, 2, 2)


def test_extract_features_on_real_videos(small_synthetic, tiny_encoder):
    index = build_index("synthetic", small_synthetic, split=1, subset="test", progress=False)
    tiny_encoder.train()
    fs = extract_features(tiny_encoder, index, num_clips=3, batch_size=4, progress=False,
                          keep_clip_features=True, device="cpu", **CLIPS)
    d = tiny_encoder.num_features
    assert fs.features.shape == (len(index), d) and fs.features.dtype == torch.float32
    assert fs.clip_features.shape == (len(index), 3, d)
    torch.testing.assert_close(fs.features, fs.clip_features.mean(1))
    assert fs.paths == index.paths and np.array_equal(fs.labels, index.labels)
    assert np.array_equal(fs.groups, index.groups) and fs.skipped == []
    assert tiny_encoder.training                        # mode restored after eval-mode extraction
    assert not torch.equal(fs.clip_features[:, 0], fs.clip_features[:, 2])   # clips differ
    again = extract_features(tiny_encoder, index, num_clips=3, batch_size=64, progress=False,
                             device="cpu", **CLIPS)
    torch.testing.assert_close(again.features, fs.features, rtol=1e-4, atol=1e-5)  # batching-free
    three = extract_features(tiny_encoder, index, num_clips=1, num_crops=3, progress=False,
                             device="cpu", clip_len=4, stride=2, size=24, resize_size=32)
    assert three.features.shape == (len(index), d) and three.settings["num_crops"] == 3


def test_defaults_come_from_the_encoder(small_synthetic, tiny_encoder):
    index = build_index("synthetic", small_synthetic, split=1, subset="test", progress=False)
    small = index.subset([0, 1])
    fs = extract_features(tiny_encoder, small, num_clips=1, progress=False, device="cpu")
    pre = tiny_encoder.preprocess
    assert fs.settings["clip_len"] == pre.num_frames and fs.settings["size"] == pre.crop_size
    assert fs.settings["resize_size"] == pre.resize_size and fs.settings["mean"] == tuple(pre.mean)


def test_corrupt_file_is_skipped_and_reported(small_synthetic, tiny_encoder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(small_synthetic, root)
    index = build_index("synthetic", root, split=1, subset="test", progress=False, cache=False)
    bad = index.path(2)
    with open(bad, "wb") as f:                          # corrupted after indexing
        f.write(np.random.default_rng(0).bytes(2048))
    fs = extract_features(tiny_encoder, index, num_clips=2, batch_size=4, progress=False,
                          device="cpu", num_workers=1, **CLIPS)
    assert len(fs) == len(index) - 1 and bad not in fs.paths
    assert [p for p, _ in fs.skipped] == [bad] and fs.skipped[0][1]
    assert list(fs.positions) == [i for i in range(len(index)) if i != 2]
    part = fs.select(index)                             # selecting by path keeps the report
    assert [p for p, _ in part.skipped] == [bad] and len(part) == len(index) - 1
