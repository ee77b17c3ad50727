"""Fixtures for the evaluation tests: a tiny encoder and a small real synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vidssl.models.encoders.base import Preprocess

# 3 classes x 3 groups x 2 clips = 18 real videos of 16 frames at 32x32; split 1: 12 train / 6 test.
SMALL_SYNTHETIC = dict(num_classes=3, groups_per_class=3, clips_per_group=2, num_frames=16,
                       size=32, fps=16, container="mixed", tracking_sequences=0, seed=0)
# Clip settings small enough for CPU tests (passed explicitly, overriding encoder.preprocess).
CLIPS = dict(clip_len=4, stride=2, size=32, resize_size=32)


class TinyTestEncoder(nn.Module):
    """Two 3D convolutions + global average pool, conforming to the vidssl encoder contract."""

    def __init__(self, width: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.num_features = width
        self.preprocess = Preprocess(num_frames=4, stride=2, crop_size=32, resize_size=32)
        self.net = nn.Sequential(
            nn.Conv3d(3, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(),
            nn.Conv3d(width, width, 3, stride=2, padding=1), nn.ReLU())

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def make_tiny_encoder() -> nn.Module:
    """``create_encoder("r3d_tiny")`` when the registry is installed, else the local test encoder."""
    from vidssl.errors import ConfigError

    try:
        from vidssl.models.encoders import create_encoder
        torch.manual_seed(0)
        return create_encoder("r3d_tiny")
    except (ImportError, ConfigError):
        return TinyTestEncoder()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny CPU workloads on a shared 2-core machine: one intra-op thread was 15x faster than
    two (a 1-epoch finetune took 0.8 s vs 14 s with other jobs running), so these tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_encoder() -> nn.Module:
    return make_tiny_encoder()


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    from vidssl.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("eval-synthetic") / "synthetic"
    make_synthetic(root, **SMALL_SYNTHETIC, workers=1, progress=False)
    return root
