"""tools/pretext_cues.py: the order pretexts' questions answered by pixel statistics (docs/compare.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidssl.data.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pretext_cues", REPO / "tools" / "pretext_cues.py")
pretext_cues = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pretext_cues)


@pytest.fixture(scope="module")
def cue_set(tmp_path_factory) -> Path:
    """18 videos whose frames dim over the clip (time_cue): every order question has a global answer."""
    root = tmp_path_factory.mktemp("cues") / "synthetic"
    make_synthetic(root, num_classes=3, groups_per_class=3, clips_per_group=2, num_frames=48, size=32,
                   fps=16, container="mixed", tracking_sequences=0, seed=0, time_cue=0.9, workers=1,
                   progress=False)
    return root


def test_statistics_answer_questions_with_an_arrow_of_time(cue_set):
    got = pretext_cues.measure(cue_set / "videos", videos=18, questions=8)
    assert got["videos"] == 18 and not got["skipped"]
    assert got["o3n"]["path_ratio"]["acc"] >= 0.9, got["o3n"]
    lo, hi = got["o3n"]["path_ratio"]["interval"]
    assert lo <= got["o3n"]["path_ratio"]["acc"] <= hi
    assert got["shuffle_learn"]["detour"]["acc"] >= 0.8, got["shuffle_learn"]


def test_statistics_are_at_chance_without_any_change_between_frames():
    frames = np.repeat(np.random.default_rng(0).random((1, 16, 16), dtype=np.float32), 48, axis=0)
    out = pretext_cues.answer_questions(frames, np.random.default_rng(0), 300,
                                        pretext_cues.OddOneOutSampler(), pretext_cues.ShuffleLearnSampler())
    # static frames: every element's ratio ties, argmax picks position 0 -> hit rate = P(odd = 0)
    assert abs(np.mean(out["o3n_path_ratio"]) - 1 / 6) < 0.07
    assert set(np.round(out["sl_detour"], 6)) == {0.0}


def test_cli_skips_a_corrupt_file_and_fails_cleanly_on_nothing_readable(cue_set, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted((cue_set / "videos").rglob("*.avi"))[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.mp4").write_bytes(b"\x00" * 512)
    tool = [sys.executable, str(REPO / "tools" / "pretext_cues.py")]
    ok = subprocess.run(tool + ["--root", str(folder), "--questions", "2"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "skipped 1 unreadable videos" in ok.stderr and "broken.mp4" in ok.stdout
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.mp4").write_bytes(b"\x00" * 512)
    bad = subprocess.run(tool + ["--root", str(only_bad)], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_untrained_encoder_features_are_scored_on_the_same_questions(cue_set):
    plain = pretext_cues.measure(cue_set / "videos", videos=18, questions=8)
    got = pretext_cues.measure(cue_set / "videos", videos=18, questions=8, encoder="r3d_tiny",
                               encoder_kwargs={"input_mode": "differences"})
    assert got["o3n"]["path_ratio"] == plain["o3n"]["path_ratio"]     # the encoder draws no randomness
    far = got["o3n"]["farthest_element"]
    assert far["encoder_kwargs"] == {"input_mode": "differences"}
    rgb = pretext_cues.measure(cue_set / "videos", videos=18, questions=8, encoder="r3d_tiny")
    # measured on this set: 0.48 with differences, 0.31 on the frames (chance 0.17): the permuted,
    # dimming element stands out more in its differences, before any training
    assert far["interval"][0] > got["o3n"]["chance"], far
    assert far["acc"] > rgb["o3n"]["farthest_element"]["acc"] + 0.08, (far, rgb["o3n"])
