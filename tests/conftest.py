"""Shared fixtures: real, small video files written with torchcodec's encoder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

CODECS = {".mp4": "libx264", ".avi": "mpeg4"}


def moving_pattern(num_frames: int, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    """``uint8 (T, 3, H, W)``: a smooth gradient that shifts every frame (so frames differ and
    inter-frame coding is exercised), with a frame-number stripe to tell frames apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 64, size=3)
    frames = []
    for t in range(num_frames):
        r = (xx * 4 + t * 7 + base[0]) % 256
        g = (yy * 4 + t * 3 + base[1]) % 256
        b = ((xx + yy) * 2 + t * 11 + base[2]) % 256
        frame = np.stack([r, g, b]).astype(np.uint8)
        frame[:, : max(2, height // 8), :] = (t * 255 // max(1, num_frames - 1))
        frames.append(frame)
    return torch.from_numpy(np.stack(frames))


def write_video(path: str | os.PathLike, num_frames: int = 24, height: int = 32, width: int = 32,
                fps: float = 8, seed: int = 0, gop: int | None = None) -> Path:
    """Encode a test clip; the codec follows the extension (.mp4 → H.264, .avi → MPEG-4)."""
    from torchcodec.encoders import VideoEncoder

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"g": str(gop)} if gop else None
    VideoEncoder(moving_pattern(num_frames, height, width, seed), frame_rate=fps).to_file(
        str(path), codec=CODECS[path.suffix], extra_options=extra)
    return path


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """A folder with one .mp4 (H.264) and one .avi (MPEG-4) of 40 frames, and an all-intra .avi."""
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "clip.mp4", num_frames=40, gop=12)
    write_video(root / "clip.avi", num_frames=40, gop=12)
    write_video(root / "intra.avi", num_frames=20, gop=1)
    return root


@pytest.fixture
def bad_files(tmp_path, video_dir) -> dict[str, Path]:
    """Files no decoder can read: zero bytes, random bytes, truncated, a text file."""
    files = {}
    files["zero"] = tmp_path / "zero.mp4"
    files["zero"].write_bytes(b"")
    files["random"] = tmp_path / "random.avi"
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    data = (video_dir / "clip.mp4").read_bytes()
    files["truncated"] = tmp_path / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["text"] = tmp_path / "notes.mp4"
    files["text"].write_text("this is not a video\n")
    return files


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_dir(tmp_path_factory):
    """Keep every cache of the tests (index metadata, prompts, concept spaces) out of the
    user's ~/.cache/vidssl."""
    old = os.environ.get("VIDSSL_CACHE_DIR")
    os.environ["VIDSSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("vidssl-cache"))
    yield
    if old is None:
        os.environ.pop("VIDSSL_CACHE_DIR", None)
    else:
        os.environ["VIDSSL_CACHE_DIR"] = old


TINY_SYNTHETIC = dict(num_classes=4, groups_per_class=3, clips_per_group=2, num_frames=32,
                      size=32, fps=16, container="mixed", tracking_sequences=0, seed=0)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 24-video synthetic dataset (4 classes, 32 frames of 32x32; split 1: 16 train / 8 test)."""
    from vidssl.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("tiny-synthetic") / "synthetic"
    make_synthetic(root, **TINY_SYNTHETIC, workers=1, progress=False)
    return root
