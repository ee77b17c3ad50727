"""run_tracking and ``vidssl track`` on the tiny synthetic set: every head, results, pictures."""

from __future__ import annotations

import json

import numpy as np

import pytest

from vidssl.cli import main
from vidssl.config import load_config
from vidssl.track import TrackConfig, run_tracking


@pytest.mark.parametrize("task", ["vos", "sot", "mot"])
def test_every_head_runs_with_pixels(task, tiny_tracking, tmp_path):
    res = run_tracking(task, str(tiny_tracking), pixels=True, out=str(tmp_path))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == pytest.approx(res["summary"])
    assert len(res["visualizations"]) == min(3, len(res["sequences"]))
    assert sorted(str(p) for p in (tmp_path / "vis").glob("*.png")) == sorted(res["visualizations"])
    assert res["speed"]["frames"] > 0 and res["speed"]["frames_per_s"] > 0
    s = res["summary"]
    if task == "vos":
        assert s["J&F"] > 0.3  # RGB features propagate the synthetic masks well above chance
    elif task == "sot":
        assert 0 < s["auc"] <= 1
    else:
        assert 0 < s["idf1"] <= 1 and s["mota"] <= 1
        assert (tmp_path / "mot").is_dir()


@pytest.mark.parametrize("task", ["vos", "sot", "mot"])
def test_every_head_runs_with_a_3d_encoder(task, tiny_tracking):
    cfg = TrackConfig(max_sequences=1)
    res = run_tracking(task, str(tiny_tracking), encoder="r3d_tiny", config=cfg)
    assert res["appearance"]["kind"] == "cnn3d" and len(res["sequences"]) == 1


def test_mot_with_gt_detections_and_dcf(tiny_tracking):
    cfg = load_config(TrackConfig, None, ["mot_detections=gt", "association.motion=none"])
    res = run_tracking("mot", str(tiny_tracking), pixels=True, config=cfg)
    assert res["summary"]["num_false_positives"] == 0
    cfg = load_config(TrackConfig, None, ["sot.method=dcf", "max_sequences=2"])
    assert run_tracking("sot", str(tiny_tracking), pixels=True, config=cfg)["summary"]["sequences"] == 2


def test_cli_track(tiny_tracking, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["track", "--task", "vos", "--pixels", "--data", str(tiny_tracking), "--out",
                 str(out), "--quiet", "visualize=1"]) == 0
    text = capsys.readouterr().out
    assert "J&F" in text and (out / "results.json").is_file()
    assert len(list((out / "vis").glob("*.png"))) == 1


@pytest.mark.parametrize("argv,needle", [
    (["--pixels", "--data", "{root}", "propagation.nope=1"], "nope"),
    (["--pixels", "--data", "{tmp}/missing"], "does not exist"),
    (["--encoder", "no_such", "--data", "{root}"], "unknown encoder"),
    (["--checkpoint", "{tmp}/x.pt", "--data", "{root}"], "checkpoint not found"),
    (["--pixels", "--data", "{root}", "sot.method=siamrpn"], "sot.method"),
])
def test_cli_errors_are_one_line(argv, needle, tiny_tracking, tmp_path, capsys):
    argv = [a.format(root=tiny_tracking, tmp=tmp_path) for a in argv]
    assert main(["track", "--task", "sot", "--quiet", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and needle in err, err


@pytest.mark.parametrize("task", ["vos", "sot", "mot"])
def test_frame_scale(task, tiny_tracking):
    cfg = load_config(TrackConfig, None, ["frame_scale=2", "max_sequences=1"])
    res = run_tracking(task, str(tiny_tracking), pixels=True, config=cfg)
    assert len(res["sequences"]) == 1
    if task == "sot":
        boxes = np.array(next(iter(res["sequences"].values()))["boxes"])
        assert boxes.max() <= 128 * 1.5  # back in original-frame pixels
    with pytest.raises(Exception, match="frame_scale"):
        load_config(TrackConfig, None, ["frame_scale=0"]).validate()


def test_vos_with_a_fixed_size_encoder(tiny_tracking, tmp_path, capsys):
    """CLIP-temporal needs 32x32 frames; the synthetic set is 128x128 (the adapter resizes)."""
    cfg = TrackConfig(max_sequences=1)
    res = run_tracking("vos", str(tiny_tracking), encoder="clip_temporal_tiny", config=cfg)
    assert res["appearance"]["kind"] == "generic" and len(res["sequences"]) == 1
    assert 0 <= res["summary"]["J&F"] <= 1 and res["summary"]["objects"] >= 1
    assert main(["track", "--task", "vos", "--encoder", "clip_temporal_tiny", "--data",
                 str(tiny_tracking), "--out", str(tmp_path), "--quiet", "max_sequences=1"]) == 0
    assert "J&F" in capsys.readouterr().out


def test_random_init_tracking_repeats_and_never_overwrites(tiny_tracking, tmp_path, monkeypatch, capsys):
    """The same `vidssl track` command with a random-init encoder gives the same numbers twice
    (the init is seeded), writes each run to its own folder named after the encoder and seed,
    and records provenance; another --seed gives another init."""
    monkeypatch.chdir(tmp_path)
    args = ["track", "--task", "vos", "--encoder", "r3d_tiny", "--data", str(tiny_tracking), "--quiet",
            "max_sequences=1", "visualize=0"]
    assert main(args) == 0 and main(args) == 0 and main([*args, "--seed", "1"]) == 0
    first, second = (tmp_path / "runs" / "track" / n / "results.json" for n in ("vos_r3d_tiny_seed0",
                                                                               "vos_r3d_tiny_seed0_v2"))
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    other = json.loads((tmp_path / "runs" / "track" / "vos_r3d_tiny_seed1" / "results.json").read_text())
    assert a["summary"] == b["summary"] and a["provenance"]["seed"] == 0
    assert a["provenance"]["command"].startswith("vidssl track --task vos")
    assert other["summary"] != a["summary"]
