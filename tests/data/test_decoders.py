"""Decoder protocol: metadata, index reads, parity across backends, clear errors."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest
import torch

from tests.conftest import moving_pattern, write_video
from vidssl.data.decoders import available_decoders, list_decoders, open_video, probe_video
from vidssl.errors import MissingDependencyError, VideoDecodeError, VidsslError

BACKENDS = available_decoders()
FILES = ["clip.mp4", "clip.avi", "intra.avi"]


def test_all_three_backends_installed_in_ci():
    # The dev extra installs them all; a missing one would silently shrink the parity test.
    assert set(BACKENDS) == {"torchcodec", "pyav", "decord"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FILES)
def test_metadata(video_dir, backend, name):
    meta = probe_video(video_dir / name, backend)
    expected = 20 if name == "intra.avi" else 40
    assert (meta.num_frames, meta.width, meta.height) == (expected, 32, 32)
    assert meta.fps == pytest.approx(8.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_uint8_tchw_in_requested_order(video_dir, backend):
    with open_video(video_dir / "clip.mp4", backend) as dec:
        idx = [30, 2, 2, 17, 0, 39]
        frames = dec.get_frames(idx)
        assert frames.dtype == torch.uint8 and frames.shape == (6, 3, 32, 32)
        # repeated index -> identical frame; order follows the request
        assert torch.equal(frames[1], frames[2])
        single = torch.stack([dec.get_frames([i])[0] for i in idx])
        assert torch.equal(frames, single)
        assert dec.get_frames([]).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_match_source_content(video_dir, backend):
    """Decoded frames are the frames that were encoded, at the right index (lossy codec)."""
    source = moving_pattern(40).float()
    with open_video(video_dir / "clip.avi", backend) as dec:
        frames = dec.get_frames(range(40)).float()
    err = (frames - source).abs().mean(dim=(1, 2, 3))
    # each frame is closest to its own source frame, not to a neighbour
    dist = torch.cdist(frames.flatten(1), source.flatten(1))
    assert torch.equal(dist.argmin(dim=1), torch.arange(40))
    assert err.max() < 12


@pytest.mark.parametrize("name", FILES)
def test_backend_parity_exact(video_dir, name):
    """Every backend returns bit-identical frames for the same indices (all use FFmpeg's
    decoders and the same YUV->RGB conversion; measured max abs difference 0 on H.264 and
    MPEG-4 part 2, intra-only and with GOP 12, see docs/decoding.md)."""
    n = probe_video(video_dir / name).num_frames
    rng = np.random.default_rng(0)
    requests = [rng.integers(0, n, 16), np.arange(n), np.sort(rng.integers(0, n, 10))[::-1]]
    for idx in requests:
        ref = None
        for backend in BACKENDS:
            with open_video(video_dir / name, backend) as dec:
                frames = dec.get_frames(idx)
            if ref is None:
                ref = frames
            else:
                diff = (frames.int() - ref.int()).abs().max().item()
                assert diff == 0, f"{backend} differs from {BACKENDS[0]} by {diff} on {name}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_index_is_a_decode_error(video_dir, backend):
    with open_video(video_dir / "clip.mp4", backend) as dec:
        with pytest.raises(VideoDecodeError, match="out of range"):
            dec.get_frames([0, 40])
        with pytest.raises(VideoDecodeError, match="out of range"):
            dec.get_frames([-1])
        with pytest.raises(VidsslError, match="1-D integer"):
            dec.get_frames(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["zero", "random", "truncated", "text"])
def test_bad_files_give_one_line_errors(bad_files, backend, kind):
    path = bad_files[kind]
    with pytest.raises(VideoDecodeError) as info:
        with open_video(path, backend) as dec:
            dec.get_frames(range(dec.metadata.num_frames))
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and len(msg) < 400


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_and_directory(tmp_path, backend):
    with pytest.raises(VideoDecodeError, match="file not found"):
        open_video(tmp_path / "nope.mp4", backend)
    with pytest.raises(VideoDecodeError, match="directory"):
        open_video(tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_avi_reads_what_is_there_or_fails_cleanly(tmp_path, backend):
    """An AVI cut mid-stream: either fewer frames are reported and all of them decode, or a
    VideoDecodeError names the file. Never a library exception, never garbage shapes."""
    src = write_video(tmp_path / "long.avi", num_frames=60, gop=10)
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        with open_video(cut, backend) as dec:
            n = dec.metadata.num_frames
            frames = dec.get_frames(range(n))
        assert 0 < n < 60 and frames.shape[0] == n
    except VideoDecodeError as err:
        assert str(cut) in str(err)


def test_unknown_backend():
    with pytest.raises(VidsslError, match="unknown decoder backend 'nvdecx'"):
        open_video("x.mp4", "nvdecx")
    assert {"torchcodec", "pyav", "decord"} <= set(list_decoders())


@pytest.mark.parametrize("backend,module", [("pyav", "av"), ("decord", "decord")])
def test_missing_optional_backend_names_the_extra(monkeypatch, video_dir, backend, module):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'vidssl\[{backend}\]'"):
        open_video(video_dir / "clip.mp4", backend)
    assert backend not in available_decoders()
