"""A tiny synthetic tracking set (2 sequences of 16 frames, 128x128), written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_TRACKING = dict(num_classes=4, groups_per_class=3, clips_per_group=1, num_frames=16, size=64,
                     fps=16, container="mp4", tracking_sequences=2, seed=0)


@pytest.fixture(scope="session")
def tiny_tracking(tmp_path_factory) -> Path:
    from vidssl.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("tiny-tracking") / "synthetic"
    make_synthetic(root, **TINY_TRACKING, workers=1, progress=False)
    return root
