"""Hostile video files (issue 8, first part): each backend either reads them correctly or
raises a one-line ``VideoDecodeError`` naming the file and the reason; index builds skip and
report them. Cases here: audio-only container, wrong extension for the container, a single
frame, spaces and non-ASCII in the path, truncation at arbitrary offsets (hypothesis), and no
read permission. (Zero-byte, random-byte, truncated and text files: tests/data/test_decoders.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_video
from vidssl.data.decoders import available_decoders, open_video
from vidssl.data.index import build_index
from vidssl.errors import VideoDecodeError

BACKENDS = available_decoders()


def write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    files = {"good": root / "good.mp4", "audio_only": root / "audio_only.mp4",
             "wrong_ext": root / "really_h264.avi", "single": root / "single.mp4",
             "unicode": root / "a dir ü" / "clip ñ 映像.mp4"}
    write_video(files["good"], num_frames=24, gop=8)
    write_audio_only(files["audio_only"])
    shutil.copy(files["good"], files["wrong_ext"])
    write_video(files["single"], num_frames=1, gop=1)
    files["unicode"].parent.mkdir()
    shutil.copy(files["good"], files["unicode"])
    return files


@pytest.mark.parametrize("backend", BACKENDS)
def test_audio_only_is_a_clear_decode_error(hostile, backend):
    with pytest.raises(VideoDecodeError, match="no video stream") as info:
        with open_video(hostile["audio_only"], backend) as dec:
            dec.get_frames(np.arange(1))
    assert str(hostile["audio_only"].name) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,frames", [("wrong_ext", 24), ("single", 1), ("unicode", 24)])
def test_odd_but_valid_files_read_correctly(hostile, backend, name, frames):
    with open_video(hostile[name], backend) as dec:
        assert dec.metadata.num_frames == frames
        x = dec.get_frames(np.arange(frames))
    with open_video(hostile["good"], backend) as ref:
        expect = ref.get_frames(np.arange(frames))
    assert x.shape == expect.shape and x.dtype == expect.dtype
    if name != "single":  # the same bytes under another name: the same frames
        assert (x == expect).all()


def test_index_skips_and_reports_hostile_files(hostile, tmp_path, caplog):
    root = tmp_path / "tree"
    for cls, name in (("a", "good"), ("a", "audio_only"), ("b", "single"), ("b", "unicode")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(hostile[name], root / cls / hostile[name].name)
    with caplog.at_level("WARNING", logger="vidssl"):
        index = build_index("folder", str(root), progress=False)
    assert len(index) == 3
    assert any("audio_only.mp4" in r.getMessage() and "no video stream" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(min_value=0.0, max_value=0.98))
def test_truncated_anywhere_reads_or_fails_cleanly(hostile, tmp_path, backend, cut):
    data = hostile["good"].read_bytes()
    path = tmp_path / f"cut_{backend}.mp4"
    path.write_bytes(data[: int(len(data) * cut)])
    try:
        with open_video(path, backend) as dec:
            n = dec.metadata.num_frames
            x = dec.get_frames(np.arange(n)) if n else None
    except VideoDecodeError as err:
        assert "\n" not in str(err) and path.name in str(err)
    else:
        assert x is None or (x.ndim == 4 and x.shape[0] == n)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads any file: a permission test needs an unprivileged user")
@pytest.mark.parametrize("backend", BACKENDS)
def test_unreadable_file_says_permission_denied(hostile, tmp_path, backend):
    path = tmp_path / "locked.mp4"
    shutil.copy(hostile["good"], path)
    path.chmod(0)
    try:
        with pytest.raises(VideoDecodeError, match="permission denied"):
            open_video(path, backend)
    finally:
        path.chmod(0o644)
