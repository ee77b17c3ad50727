"""A whole epoch over every hostile kind of file: nothing crashes or hangs, each bad file is
skipped with a one-line reason naming it, the epoch completes and the counts come out at the end
(through the DataLoader's worker processes and through ``pretrain``)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.files import write_all
from tests.train.test_pretrain import tiny_config
from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader
from vidssl.data.deadline import DecodeDeadline
from vidssl.data.decoders import available_decoders
from vidssl.data.decoders.base import DECODERS, register_decoder
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.errors import VideoDecodeError, VidsslError

GOOD = ("good", "vfr_mp4", "vfr_mkv", "wrong_ext", "unicode")
# Bad kind -> the reason every backend must give (None: any one-line reason naming the file).
BAD = {"zero": "empty file", "random": None, "truncated": None, "text": None,
       "audio_only": "no video stream", "unknown_codec": "unsupported video codec",
       "huge": "exceeds the limit", "fifo": r"not a regular file \(FIFO\)"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile_epoch")
    files = write_all(root)
    files["fifo"] = root / "pipe.mp4"
    os.mkfifo(files["fifo"])
    files["hang"] = root / "hang.mp4"
    shutil.copy(files["good"], files["hang"])
    return files


def hostile_index(files: dict[str, Path], kinds) -> VideoIndex:
    """An index as if built before the files went bad (24 frames at 8 fps each)."""
    paths = [str(files[k]) for k in kinds]
    return VideoIndex(paths, [0] * len(paths), [24] * len(paths), [8.0] * len(paths),
                      class_names=["a"], name="hostile")


def run_epoch(dataset: ClipDataset, workers: int) -> tuple[int, SkipCounter]:
    loader = build_loader(dataset, batch_size=3, shuffle=False, num_workers=workers, drop_last=False)
    seen, skipped = 0, SkipCounter()
    for batch in loader:
        seen += batch["views"][0].shape[0]
        skipped.update(batch)
    return seen, skipped


def check_reasons(skipped: SkipCounter, files: dict[str, Path], kinds) -> None:
    assert set(skipped.paths) == {str(files[k]) for k in kinds}
    for kind in kinds:
        reason = skipped.paths[str(files[kind])]
        assert "\n" not in reason and reason
        if BAD.get(kind):
            assert re.search(BAD[kind], reason), (kind, reason)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("backend", available_decoders())
def test_epoch_over_every_hostile_kind_completes_and_counts(hostile, backend):
    kinds = [*GOOD, *BAD]
    dataset = ClipDataset(hostile_index(hostile, kinds), RandomClipSampler(num_frames=4, stride=1),
                          decoder=backend, decode_timeout_s=30)
    seen, skipped = run_epoch(dataset, workers=2)
    assert seen == len(kinds)  # every position produced a sample (bad ones replaced)
    check_reasons(skipped, hostile, BAD)
    assert skipped.count >= len(BAD)
    assert f"over {len(BAD)} unreadable files" in skipped.summary()


@pytest.fixture
def hanging_backend():
    register_decoder("hang_test", "tests.reliability.hanging_backend", "HangingDecoder",
                     "torchcodec", "torchcodec")
    yield "hang_test"
    DECODERS.pop("hang_test", None)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_hanging_file_is_abandoned_at_the_deadline(hostile, hanging_backend, workers):
    kinds = ["good", "hang", "vfr_mp4", "good", "wrong_ext", "unicode"]
    dataset = ClipDataset(hostile_index(hostile, kinds), RandomClipSampler(num_frames=4, stride=1),
                          decoder=hanging_backend, decode_timeout_s=1.0)
    seen, skipped = run_epoch(dataset, workers=workers)  # returns: the hang (600 s) was cut
    assert seen == len(kinds)
    assert list(skipped.paths) == [str(hostile["hang"])]
    assert "did not finish within 1 s" in skipped.paths[str(hostile["hang"])]


def test_deadline_abandons_overruns_then_gives_up():
    deadline = DecodeDeadline(0.2, max_abandoned=1)
    assert deadline.run("a.mp4", lambda x: x + 1, 1) == 2
    assert deadline.run("a.mp4", threading.get_ident) != threading.get_ident()  # on its thread
    with pytest.raises(ValueError, match="boom"):  # the call's own errors come through as is
        deadline.run("a.mp4", lambda: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(VideoDecodeError, match=r"slow\.mp4: decoding did not finish within 0\.2 s"):
        deadline.run("slow.mp4", time.sleep, 5)
    assert deadline.run("a.mp4", lambda: "fresh thread") == "fresh thread"
    with pytest.raises(VidsslError, match="2 decodes overran .* appears stuck"):
        deadline.run("slow2.mp4", time.sleep, 5)
    inline = DecodeDeadline(None)
    assert inline.run("a.mp4", threading.get_ident) == threading.get_ident()
    with pytest.raises(VidsslError, match=">= 0"):
        DecodeDeadline(-1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_pretrain_survives_hostile_files_and_reports_them(hostile, tiny_synthetic, tmp_path,
                                                          monkeypatch):
    """The trainer's own path: files that went bad after indexing are skipped, counted in the
    result (what ``vidssl pretrain`` prints at the end) and in the checkpoint."""
    kinds = [*GOOD, *GOOD, *BAD]
    monkeypatch.setattr("vidssl.train.loop.build_training_index",
                        lambda data: hostile_index(hostile, kinds))
    cfg = tiny_config(tiny_synthetic, tmp_path / "run", "train.max_steps=3", "data.num_workers=2",
                      "data.decode_timeout_s=30")
    from vidssl.train.loop import pretrain

    result = pretrain(cfg)
    assert result.steps == 3
    assert result.skipped.count >= 1
    assert set(result.skipped.paths) <= {str(hostile[k]) for k in BAD}
    assert "unreadable files" in result.skipped.summary()


def test_run_batch_abandons_only_the_file_that_overran():
    """One hand-off per batch: the calls run in order on the helper thread; the file whose decode
    overruns is reported (with its tag) and the calls from it on run again on a fresh thread."""
    from vidssl.data.deadline import beat

    deadline = DecodeDeadline(0.3, max_abandoned=2)
    hung = {"b.mp4": True}
    reported = []

    def call(name):
        def run():
            beat(name, tag=name.upper())
            if hung.pop(name, False):
                time.sleep(5)  # the first time only: the re-run of this call then succeeds
            return (name, threading.get_ident())
        return run

    results, after = deadline.run_batch(
        [call("a.mp4"), call("b.mp4"), call("c.mp4")],
        lambda k, err, tag: reported.append((k, err.path, tag, err.reason)),
        then=lambda rs: [name for name, _ in rs])
    assert [r[0] for r in results] == ["a.mp4", "b.mp4", "c.mp4"]
    assert after == ["a.mp4", "b.mp4", "c.mp4"]  # ``then`` ran on every result
    assert results[0][1] != threading.get_ident()  # ran on the helper
    assert results[0][1] != results[2][1]  # the calls after the overrun: a fresh thread
    assert [(k, p, t) for k, p, t, _ in reported] == [(1, "b.mp4", "B.MP4")]
    assert "did not finish within 0.3 s" in reported[0][3]
    inline = DecodeDeadline(None)
    assert inline.run_batch([lambda: 1, lambda: 2], None, then=sum) == ([1, 2], 3)
    with pytest.raises(ValueError, match="boom"):
        deadline.run_batch([lambda: (_ for _ in ()).throw(ValueError("boom"))], None)
