"""Hostile video files: each backend either reads them correctly or raises a one-line
``VideoDecodeError`` naming the file and the reason; index builds skip and report them.

Cases here: audio-only container, unknown codec, frames larger than 8K, variable frame rate,
wrong extension for the container, a single frame, spaces and non-ASCII in the path, a FIFO,
truncation at arbitrary offsets (hypothesis), no read permission. Zero-byte, random-byte,
truncated and text files: tests/data/test_decoders.py; a whole epoch over all of them, the decode
deadline and the counts at the end: test_hostile_epoch.py; mutation fuzzing: test_fuzz.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import moving_pattern
from tests.reliability.files import write_all
from vidssl.data.decoders import available_decoders, open_video
from vidssl.data.index import build_index
from vidssl.errors import VideoDecodeError

BACKENDS = available_decoders()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("hostile"))


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_codec_is_named(hostile, backend):
    with pytest.raises(VideoDecodeError, match="unsupported video codec") as info:
        with open_video(hostile["unknown_codec"], backend) as dec:
            dec.get_frames(np.arange(2))
    assert "unknown_codec.avi" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_larger_than_8k_are_refused_before_decoding(hostile, backend):
    with pytest.raises(VideoDecodeError, match="frame size 8448x4480 exceeds the limit"):
        open_video(hostile["huge"], backend)
    with open_video(hostile["huge"], backend, max_frame_pixels=None) as dec:  # opt-in: it opens
        assert (dec.metadata.width, dec.metadata.height) == (8448, 4480)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["vfr_mp4", "vfr_mkv"])
def test_variable_frame_rate_frames_come_in_presentation_order(hostile, backend, name):
    source = moving_pattern(30, 32, 32).float()
    with open_video(hostile[name], backend) as dec:
        assert dec.metadata.num_frames == 30 and dec.metadata.fps > 0
        frames = dec.get_frames(np.arange(30)).float()
        again = dec.get_frames(np.array([29, 3, 17]))
    # Each decoded frame is nearest to the source frame of the same number (lossy codec).
    dist = ((frames[:, None] - source[None]) ** 2).mean(dim=(2, 3, 4))
    assert dist.argmin(dim=1).tolist() == list(range(30))
    assert (again.float() == frames[[29, 3, 17]]).all()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("backend", BACKENDS)
def test_fifo_is_refused_without_blocking(tmp_path, backend):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: never
    with pytest.raises(VideoDecodeError, match=r"not a regular file \(FIFO\)"):  # returns at all
        open_video(fifo, backend)


PERMISSION_CHECK = """
import sys
from vidssl.data.decoders import open_video
from vidssl.errors import VideoDecodeError
backend, locked, readable = sys.argv[1:]
with open_video(readable, backend) as dec:
    assert dec.metadata.num_frames == 24
try:
    open_video(locked, backend)
except VideoDecodeError as err:
    print(err)
else:
    print("OPENED")
"""


DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("backend", BACKENDS)
def test_unreadable_file_says_permission_denied(hostile, tmp_path, backend):
    """As root (CI containers) the check runs in a child process without the capabilities that
    let root read any file (``setpriv`` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""
    locked, readable = tmp_path / "locked.mp4", tmp_path / "readable.mp4"
    for path in (locked, readable):
        shutil.copy(hostile["good"], path)
    locked.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(VideoDecodeError, match="permission denied"):
            open_video(locked, backend)
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop root's file access")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([*DROP_DAC, sys.executable, "-c", PERMISSION_CHECK, backend, str(locked),
                          str(readable)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": repo})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "permission denied" in out.stdout and "locked.mp4" in out.stdout, out.stdout
