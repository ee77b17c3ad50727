"""A real folder of mixed sizes trains from a config alone; worker errors reach the user as one
line; a partly corrupt file is re-drawn at other positions before it is given up; the end-of-run
summary keeps index-time drops and train-time skips apart."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_video
from vidssl.cli import main
from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader, worker_error
from vidssl.data.decoders import FrameDecodeError, open_video
from vidssl.data.index import build_index
from vidssl.data.index.core import Failure, IndexReport, VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.data.samplers.base import SampledClips
from vidssl.data.transforms import clip_transform
from vidssl.errors import ConfigError, DatasetError, VidsslError

# three sizes, three aspect ratios (landscape 3:2, portrait 2:3, square), two classes
SIZES = [(32, 48), (48, 32), (40, 40)]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed") / "videos"
    for label, cls in enumerate(["jump", "wave"]):
        for k, (h, w) in enumerate(SIZES):
            ext = ".mp4" if k % 2 == 0 else ".avi"
            write_video(root / cls / f"{cls}_{k}{ext}", num_frames=16, height=h, width=w,
                        seed=label * 10 + k)
    return root


def write_config(path: Path, root: Path, out: Path, crop: str) -> Path:
    path.write_text(textwrap.dedent(f"""\
        data:
          dataset: folder
          root: {root}
          {crop}
          batch_size: 4
          num_workers: 2
        encoder:
          name: r3d_tiny
        method:
          name: cvrl
          params: {{clip_len: 4, stride: 2, crop_size: 32, hidden_dim: 32, num_hidden_layers: 1}}
        optim:
          warmup_steps: 1
        train:
          epochs: 3
          max_steps: 3
          out_dir: {out}
          progress: false
          tensorboard: false
        """))
    return path


def test_folder_of_mixed_sizes_pretrains_from_a_config(mixed_folder, tmp_path, capsys):
    index = build_index("folder", mixed_folder, progress=False)
    sizes = set()
    for p in index.paths:
        with open_video(p) as dec:
            sizes.add((dec.metadata.height, dec.metadata.width))
    assert sizes == set(SIZES)
    cfg = write_config(tmp_path / "folder.yaml", mixed_folder, tmp_path / "run", "crop: 32")
    assert main(["pretrain", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "pretrained 3 steps" in out and "no videos skipped" in out
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_mixed_sizes_without_a_crop_fail_with_one_line_from_the_workers(mixed_folder, tmp_path,
                                                                        capsys):
    cfg = write_config(tmp_path / "nocrop.yaml", mixed_folder, tmp_path / "run", "resize: 32")
    assert main(["pretrain", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "differ in size" in err and "data.crop" in err and "Traceback" not in err


def test_worker_errors_are_re_raised_as_their_one_line(tmp_path, bad_files):
    index = VideoIndex([str(p) for p in bad_files.values()], [0] * len(bad_files),
                       [10] * len(bad_files), [8.0] * len(bad_files))
    ds = ClipDataset(index, RandomClipSampler(num_frames=2), max_attempts=3)
    loader = build_loader(ds, 2, num_workers=1, shuffle=False)
    with pytest.raises(VidsslError) as info:
        next(iter(loader))
    message = str(info.value)
    assert "\n" not in message and message.startswith("3 consecutive videos")
    assert "DataLoader worker" not in message
    # a bug's traceback is left alone
    assert worker_error(RuntimeError("Caught KeyError in DataLoader worker process 0.\n"
                                     "Original Traceback (most recent call last):\n"
                                     "KeyError: 'x'")) is None


def test_clip_transform_policy():
    assert clip_transform(None, None) is None
    clip = torch.zeros(3, 3, 30, 60, dtype=torch.uint8)
    assert clip_transform(20, None)(clip).shape == (3, 3, 20, 40)  # aspect kept
    assert clip_transform(None, 16)(clip).shape == (3, 3, 16, 16)
    assert clip_transform(24, 16)(clip).shape == (3, 3, 16, 16)
    with pytest.raises(ConfigError, match="at least data.crop"):
        clip_transform(8, 16)
    with pytest.raises(ConfigError, match="positive integer"):
        clip_transform(0, None)


class _Fixed:
    """A sampler that replays the clip starts it is given, one per call."""

    view_lengths = (2,)

    def __init__(self, starts: list[int]):
        self.starts = list(starts)

    def __call__(self, num_frames: int, fps: float, rng) -> SampledClips:
        start = self.starts.pop(0) if len(self.starts) > 1 else self.starts[0]
        return SampledClips((np.array([start, start + 1]),), ("clip",))


@pytest.fixture(scope="module")
def corrupt_mp4(tmp_path_factory) -> tuple[Path, int]:
    """H.264 MP4 whose one B-frame packet does not decode (49 of 50 frames): path, hole."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("the FFmpeg command-line tools are not installed")
    from vidssl.data.decoders import conformance as C

    path = C.write_kind("corrupt_packet_mp4", tmp_path_factory.mktemp("corrupt"))
    hole = int(np.flatnonzero(C.reference(path).expected < 0)[0])
    return path, hole


def test_a_partly_corrupt_file_is_redrawn_at_another_position(corrupt_mp4):
    path, hole = corrupt_mp4
    with open_video(path) as dec:
        with pytest.raises(FrameDecodeError, match=f"frame {hole} could not be decoded"):
            dec.get_frames([hole])
    index = VideoIndex([str(path)], [0], [50], [25.0])
    ds = ClipDataset(index, _Fixed([hole - 1, 0]))  # first draw covers the hole, the next not
    item = ds[0]
    assert item["skipped"] == [] and len(item["retried"]) == 1
    assert torch.equal(item["views"][0], open_video(path).get_frames([0, 1]))
    counter = SkipCounter()
    counter.update({"retried": item["retried"], "skipped": []})
    assert "1 clips re-drawn at another position" in counter.summary()
    assert counter.summary().startswith("no videos skipped")


def test_a_file_failing_at_every_retry_is_given_up(corrupt_mp4):
    path, hole = corrupt_mp4
    index = VideoIndex([str(path)], [0], [50], [25.0])
    ds = ClipDataset(index, _Fixed([hole - 1]), clip_retries=2, max_attempts=2)
    with pytest.raises(VidsslError, match="2 consecutive videos"):
        ds[0]
    assert ds._known_bad == {0}


def test_summary_counts_index_drops_and_train_skips_separately(tmp_path, good_videos_dir):
    report = IndexReport(missing=[str(tmp_path / "gone.mp4")],
                         failed=[Failure(str(tmp_path / "bad.mp4"), "no video stream")])
    index = VideoIndex([str(good_videos_dir / "clip.mp4")], [0], [40], [8.0], report=report)
    counter = SkipCounter.for_index(index)
    counter.update({"skipped": [("/d/x.avi", "empty file (0 bytes)")] * 2})
    text = counter.summary()
    assert "2 files dropped when the index was built" in text and "gone.mp4: missing" in text
    assert "2 samples skipped over 1 unreadable files during training" in text
    merged = SkipCounter.for_index(index)
    merged.merge(SkipCounter.from_state(counter.state()))
    merged.merge(SkipCounter.from_state(counter.state()))
    assert merged.count == 4 and len(merged.index_dropped) == 2  # ranks sum; drops do not


@pytest.fixture
def good_videos_dir(video_dir) -> Path:
    return video_dir


def test_folder_index_reports_unreadable_files(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "a" / "ok.mp4", num_frames=8)
    (root / "a" / "broken.mp4").write_bytes(b"not a video")
    index = build_index("folder", root, progress=False)
    assert len(index) == 1 and len(index.report.failed) == 1
    assert "1 files dropped when the index was built" in SkipCounter.for_index(index).summary()
    (root / "a" / "ok.mp4").unlink()
    with pytest.raises(DatasetError):
        build_index("folder", root, progress=False)
