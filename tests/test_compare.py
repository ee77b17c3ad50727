"""`vidssl compare` end to end on a tiny synthetic dataset: every method in its own process,
one table."""

from __future__ import annotations

import json
import math

import pytest

from vidssl.cli import main
from vidssl.compare import COLUMNS, COMPARE_ENTRIES, CompareConfig, comparison_table, entry_config
from vidssl.config import load_config
from vidssl.errors import VidsslError
from vidssl.methods import method_params


def test_every_entry_is_a_valid_method_config(tmp_path):
    cfg = CompareConfig()
    assert set(cfg.entries) == set(COMPARE_ENTRIES)
    for name in cfg.entries:
        pcfg = entry_config(cfg, name, str(tmp_path), 0, str(tmp_path / name))
        method_params(pcfg.method.name, pcfg.method.params)
        stages = COMPARE_ENTRIES[name].get("stages", 1)
        assert pcfg.train.max_steps * stages == cfg.steps and pcfg.optim == cfg.optim  # one budget


def test_overrides_merge_and_unknown_entries_fail(tmp_path):
    cfg = load_config(CompareConfig, None, ["overrides={dpc: {pred_steps: 2}}"])
    assert entry_config(cfg, "dpc", "r", 0, "o").method.params["pred_steps"] == 2
    with pytest.raises(VidsslError, match="unknown compare entry 'moco'"):
        entry_config(cfg, "moco", "r", 0, "o")
    assert main(["compare", "--root", str(tmp_path), "entries=[moco]"]) == 2


def test_table_has_a_row_per_contender():
    table = comparison_table({"random init": {"metrics": {"linear_top1": [0.3, 0.5]}},
                              "dpc": {"metrics": {"linear_top1": [0.4], "peak_rss_mb": [812.4]}}})
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].count("|") == len(COLUMNS) + 2
    assert "| random init | 40.0 ± 14.1 |" in lines[2] and "812" in lines[3]


def test_compare_runs_each_method_in_a_child_and_writes_the_table(tiny_synthetic, tmp_path):
    out = tmp_path / "cmp"
    rc = main(["compare", "--root", str(tiny_synthetic), "--quiet", f"out_dir={out}",
               "entries=[cvrl,dpc,coclr]", "num_workers=0", "eval.num_clips=2", "eval.size=32",
               "eval.protocols=[linear,retrieval,diagnostics]",
               "steps=3", "overrides={cvrl: {crop_size: 32}, dpc: {crop_size: 32, num_blocks: 4}, "
               "coclr: {crop_size: 32, num_frames: 4, queue_size: 4, topk: 2}}"])
    assert rc == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert list(summary["contenders"]) == ["random init", "cvrl", "dpc", "coclr"]
    for name in ("cvrl", "dpc", "coclr"):
        m = summary["contenders"][name]["metrics"]
        assert m["peak_rss_mb"][0] > 50                       # a torch process: not a unit slip
        assert all(math.isfinite(m[k][0]) for k in ("pretrain_s", "train_clips_per_s"))
        assert 0.0 <= m["linear_top1"][0] <= 1.0
    assert (out / "cvrl_seed0" / "checkpoints" / "last.pt").exists()
    assert (out / "coclr_seed0" / "stage3_cotrain_rgb" / "checkpoints" / "last.pt").exists()
    table = (out / "comparison.md").read_text()
    assert "| cvrl |" in table and "| dpc |" in table and (out / "report.html").exists()
    assert "action linear probe (BN recompute) %" in table
    row = next(line for line in table.splitlines() if line.startswith("| cvrl |"))
    assert row.split("|")[2].strip().count("[") == 1            # mean [low, high]
    assert any(n.startswith("BatchNorm: recompute") for n in summary["notes"])


def test_table_intervals_and_bn_columns():
    a = {"metrics": {"linear_top1": [0.5, 0.25], "bn_keep/linear_top1": [0.25, 0.25]},
         "per_video": {"linear_top1": [[1, 0, 1, 0], [0, 1, 0, 0]], "bn_keep/linear_top1": [[0, 1, 0, 0]] * 2}}
    b = {"metrics": {"linear_top1": [0.5], "bn_keep/linear_top1": [0.5]}}
    from vidssl.demo import DemoEval

    table = comparison_table({"a": a, "b": b}, DemoEval())
    head, _, row_a, row_b = table.splitlines()
    assert "linear probe, BN keep %" in head and "(BN recompute)" in head
    assert row_a.startswith("| a | 37.5 [") and "| 25.0 [" in row_a
    assert row_b.startswith("| b | 50.0 | 50.0 |")           # no outcomes: no interval
    same = comparison_table({"b": b}, DemoEval())
    assert "BN keep" not in same                               # identical under both modes: hidden


def test_masked_entries_train_their_own_vit_and_build(tmp_path):
    from vidssl.compare import own_encoders
    from vidssl.methods import create_method
    from vidssl.models.encoders import create_encoder

    cfg = CompareConfig()
    assert {"videomae", "vjepa"} <= set(cfg.entries)
    for name in ("videomae", "vjepa"):
        pcfg = entry_config(cfg, name, str(tmp_path), 0, str(tmp_path / name))
        assert pcfg.encoder.name == "videomae_tiny" and pcfg.encoder.kwargs["patch_size"] == 8
        create_method(pcfg.method.name, create_encoder(pcfg.encoder.name, **pcfg.encoder.kwargs),
                      pcfg.method.params)
    assert entry_config(cfg, "cvrl", "r", 0, "o").encoder.name == "r3d_tiny"
    # one random-init baseline per distinct own encoder (both recipes share theirs)
    assert [e.name for e in own_encoders(cfg)] == ["videomae_tiny"]
    assert own_encoders(load_config(CompareConfig, None, ["entries=[cvrl]"])) == []


def test_a_runs_reconstruction_picture_reaches_the_report(tmp_path):
    from PIL import Image

    from vidssl.compare import copy_pictures
    from vidssl.report import write_report

    run, out = tmp_path / "videomae_seed0", tmp_path / "cmp"
    run.mkdir()
    out.mkdir()
    Image.new("RGB", (12, 4)).save(run / "reconstruction.png")
    pictures = copy_pictures(str(run), str(out), "videomae", 0)
    assert [p[1] for p in pictures] == ["videomae_seed0_reconstruction.png"]
    assert copy_pictures(str(tmp_path), str(out), "cvrl", 0) == []           # a run without pictures
    html = open(write_report(str(out), {"title": "t", "pictures": pictures, "contenders": {
        "random init": {"metrics": {"linear_top1": [0.3]}}}}), encoding="utf-8").read()
    assert "<img src='videomae_seed0_reconstruction.png'>" in html and "input | masked | reconstructed" in html
