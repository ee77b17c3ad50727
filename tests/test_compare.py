"""`vidssl compare` end to end on a tiny synthetic dataset: every method in its own process,
one table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vidssl.cli import main
from vidssl.compare import COLUMNS, COMPARE_ENTRIES, CompareConfig, comparison_table, entry_config
from vidssl.config import load_config
from vidssl.demo import DemoConfig
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


def test_a_variant_changes_only_what_it_names(tmp_path):
    cfg = CompareConfig()
    recipe, rgb = (entry_config(cfg, n, "r", 0, "o") for n in ("o3n", "o3n_rgb"))
    assert recipe.encoder.kwargs["input_mode"] == "differences"      # O3N's small-scale recipe
    assert rgb.encoder.kwargs == {**recipe.encoder.kwargs, "input_mode": "rgb"}
    assert rgb.encoder.name == recipe.encoder.name == "r3d_tiny"
    assert rgb.method == recipe.method and rgb.data == recipe.data
    from vidssl.compare import baseline_rows, init_row

    # an entry whose encoder arguments differ from the compared encoder's defaults (its recipe's
    # or its variant's) gets its own random-init row: the same weights, another input; one row
    # per distinct setting, shared by the entries that have it
    cfg = load_config(CompareConfig, None, ["entries=[o3n,o3n_rgb,cvrl,cvrl_rgb,vcop,tclr_ll_gl]"])
    assert [(row, e.kwargs) for row, e in baseline_rows(cfg)] == [
        ("random init (input_mode=differences)", {"input_mode": "differences"}),
        ("random init (temporal_dilation_last_stage=True)", {"temporal_dilation_last_stage": True})]
    rows = {"random init": {}, "random init (input_mode=differences)": {},
            "random init (temporal_dilation_last_stage=True)": {}}
    assert init_row(rows, "o3n") == init_row(rows, "cvrl") == "random init (input_mode=differences)"
    assert init_row(rows, "o3n_rgb") == init_row(rows, "cvrl_rgb") == init_row(rows, "vcop") == "random init"
    assert init_row(rows, "tclr_ll_gl") == "random init (temporal_dilation_last_stage=True)"
    assert init_row({"random init": {}}, "o3n") == "random init"   # results older than the row
    # rows are relative to the compared encoder: compared on differences, the RGB variant is the odd one
    cfg = load_config(CompareConfig, None, ["entries=[o3n,o3n_rgb]", "encoder.kwargs={input_mode: differences}"])
    assert [(row, e.kwargs) for row, e in baseline_rows(cfg)] == [("random init (input_mode=rgb)", {"input_mode": "rgb"})]
    # and the table pairs an entry with the row its run recorded
    rows = {"random init": {}, "random init (input_mode=rgb)": {}, "o3n_rgb": {"init_row": "random init (input_mode=rgb)"}}
    assert init_row(rows, "o3n_rgb") == "random init (input_mode=rgb)"


def test_overrides_merge_and_unknown_entries_fail(tmp_path):
    cfg = load_config(CompareConfig, None, ["overrides={dpc: {pred_steps: 2}}"])
    assert entry_config(cfg, "dpc", "r", 0, "o").method.params["pred_steps"] == 2
    with pytest.raises(VidsslError, match="unknown compare entry 'moco'"):
        entry_config(cfg, "moco", "r", 0, "o")
    assert main(["compare", "--root", str(tmp_path), "entries=[moco]"]) == 2
    # an entry whose recipe sets an argument the compared encoder does not take: one line, before any work
    assert main(["compare", "--root", str(tmp_path), "entries=[vcop,cvrl]", "encoder.name=s3d_tiny"]) == 2
    from vidssl.compare import check_encoder_arguments

    with pytest.raises(VidsslError, match=r"entry 'cvrl' sets encoder argument\(s\) input_mode .*"
                                          r"configs/pretrain/cvrl_synthetic.yaml.* 's3d_tiny' does not take"):
        check_encoder_arguments(load_config(CompareConfig, None, ["entries=[vcop,cvrl]", "encoder.name=s3d_tiny"]))
    check_encoder_arguments(load_config(CompareConfig, None, ["entries=[vcop,dpc]", "encoder.name=s3d_tiny"]))


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
               "eval.protocols=[linear,retrieval,diagnostics,counterfactual]",
               "eval.counterfactual_triplets=4", "steps=3", "overrides={cvrl: {crop_size: 32}, dpc: {crop_size: 32, num_blocks: 4}, "
               "coclr: {crop_size: 32, num_frames: 4, queue_size: 4, topk: 2}}"])
    assert rc == 0
    summary = json.loads((out / "comparison.json").read_text())
    # CVRL's recipe feeds frame differences: its own random-init row, evaluated per seed
    assert list(summary["contenders"]) == ["random init", "random init (input_mode=differences)",
                                           "cvrl", "dpc", "coclr"]
    assert [summary["contenders"][n]["init_row"] for n in ("cvrl", "dpc", "coclr")] == \
        ["random init (input_mode=differences)", "random init", "random init"]
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
    assert list(summary["pretext"]) == ["cvrl", "dpc", "coclr"] and (out / "pretext.png").exists()
    assert "action share of feature change %" in table.splitlines()[0]
    pv = summary["contenders"]["dpc"]["per_video"]["counterfactual_motion_preference"]
    assert len(pv) == 1 and len(pv[0]) == 4 and set(pv[0]) <= {0.0, 0.5, 1.0}


def test_compare_evaluates_the_counterfactual_triplets_by_default():
    assert "counterfactual" in CompareConfig().eval.protocols
    assert "counterfactual" not in DemoConfig().eval.protocols            # the demo stays short
    table = comparison_table({"a": {"metrics": {"linear_top1": [0.5]}}})
    assert "action share" not in table                                # absent: no column
    head = comparison_table({"a": {"metrics": {"linear_top1": [0.5],
                                               "counterfactual_action_share": [0.25]}}}).splitlines()
    cells = [c.strip() for c in head[0].split("|")]
    assert cells.index("action share of feature change %") == cells.index("retrieval R@1 %") - 1
    assert "| 25.0 |" in head[2]


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
    from vidssl.compare import baseline_rows
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
    masked = load_config(CompareConfig, None, ["entries=[videomae,vjepa,vcop]"])
    assert [(row, e.name) for row, e in baseline_rows(masked)] == [("random init (videomae_tiny)", "videomae_tiny")]
    assert baseline_rows(load_config(CompareConfig, None, ["entries=[vcop]"])) == []


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


def fake_run(folder, metric_values, *, chance=None, key="acc", losses=None):
    """A run folder whose metrics.jsonl logs ``key`` = ``metric_values`` (steps 1, 2, ...)."""
    folder.mkdir(parents=True)
    rows = []
    for step, v in enumerate(metric_values, 1):
        row = {"step": step, "loss": losses[step - 1] if losses else 1.0, "lr": 1e-3}
        if key != "loss":
            row[key] = v
        if chance is not None:
            row["chance"] = chance
        rows.append(json.dumps(row))
    (folder / "metrics.jsonl").write_text("\n".join(rows) + "\n")


def test_pretext_curves_records_and_column_from_the_runs_logs(tmp_path):
    """Fake entry folders (no training): a run logging its chance, an old one without it, CoCLR's
    three stages as one curve and a masked method measured by its loss."""
    from PIL import Image

    from vidssl.compare import comparison_summary, write_comparison

    out = tmp_path / "cmp"
    cfg = load_config(CompareConfig, None, [f"out_dir={out}", "entries=[cvrl,dpc,coclr,videomae]", "seeds=[0,1]"])
    fake_run(out / "cvrl_seed0", [0.1] * 2 + [0.5] * 16 + [0.9, 0.7], chance=0.1)   # 20 steps: 10% = 2
    fake_run(out / "cvrl_seed1", [0.4] * 20, chance=0.2)
    for seed in (0, 1):
        fake_run(out / f"dpc_seed{seed}", [0.2 + 0.1 * seed] * 10)                   # before "chance" was logged
        for stage, acc in (("stage1_infonce_rgb", 0.0), ("stage2_infonce_residual", 0.5),
                           ("stage3_cotrain_rgb", 1.0 - 0.3 * seed)):
            fake_run(out / f"coclr_seed{seed}" / stage, [acc] * 10, chance=1 / 129)
        mae = [1.0, 0.9] + [0.8] * 16 + [0.6, 0.5]
        fake_run(out / f"videomae_seed{seed}", mae, key="loss", losses=mae)
    contenders = {"random init": {"seeds": [0, 1], "metrics": {"linear_top1": [0.3, 0.4]}},
                  **{n: {"seeds": [0, 1], "metrics": {"linear_top1": [0.2, 0.3]}} for n in cfg.entries}}
    write_comparison(str(out), comparison_summary("data", cfg, contenders), cfg.eval)

    png = out / "pretext.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    pretext = json.loads((out / "comparison.json").read_text())["pretext"]
    assert list(pretext) == ["cvrl", "dpc", "coclr", "videomae"]
    cvrl = pretext["cvrl"]
    assert (cvrl["metric"], cvrl["frac"]) == ("acc", 0.1) and cvrl["what"].startswith("instance accuracy")
    assert [s["seed"] for s in cvrl["seeds"]] == [0, 1] and [s["steps"] for s in cvrl["seeds"]] == [20, 20]
    assert [s["first"] for s in cvrl["seeds"]] == pytest.approx([0.1, 0.4])
    assert [s["last"] for s in cvrl["seeds"]] == pytest.approx([0.8, 0.4])
    assert [s["chance"] for s in cvrl["seeds"]] == pytest.approx([0.1, 0.2])
    assert (cvrl["first"], cvrl["last"], cvrl["chance"]) == pytest.approx((0.25, 0.6, 0.15))
    dpc = pretext["dpc"]                                     # 10 steps: 10% = 1
    assert dpc["chance"] is None and all(s["chance"] is None for s in dpc["seeds"])
    assert (dpc["first"], dpc["last"]) == pytest.approx((0.25, 0.25))
    coclr = pretext["coclr"]                                 # 3 stages x 10 steps: one curve of 30
    assert coclr["stage_starts"] == [10, 20] and [p[0] for p in coclr["curves"][0]] == list(range(1, 31))
    assert [s["steps"] for s in coclr["seeds"]] == [30, 30]
    assert [s["first"] for s in coclr["seeds"]] == [0.0, 0.0]
    assert [s["last"] for s in coclr["seeds"]] == pytest.approx([1.0, 0.7])
    assert (coclr["last"], coclr["chance"]) == pytest.approx((0.85, 1 / 129))
    mae = pretext["videomae"]
    assert (mae["metric"], mae["what"], mae["chance"]) == ("loss", "training loss", None)
    assert (mae["first"], mae["last"]) == pytest.approx((0.95, 0.55))

    table = (out / "comparison.md").read_text()
    head = table.splitlines()[0].split(" | ")
    col = head.index("pretext metric, last 10% [chance]")
    assert head[col + 1] == "train clips/s"                   # before the training costs
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[col] for line in table.splitlines()[2:]
             if line.startswith("| ")}
    assert cells == {"random init": "-", "cvrl": "0.60 ± 0.28 [0.15]", "dpc": "0.25 ± 0.07",
                     "coclr": "0.85 ± 0.21 [0.0078]", "videomae": "loss 0.55 ± 0.00"}
    assert "![pretext-task curves per method](pretext.png)" in table
    assert "<img src='pretext.png'>" in (out / "report.html").read_text()


def test_a_stage_s_steps_continue_the_curve_and_the_table_ignores_missing_records(tmp_path):
    from vidssl.compare import entry_records

    fake_run(tmp_path / "a", [0.1, 0.2, 0.3])
    fake_run(tmp_path / "b", [0.4, 0.5])
    rows, starts = entry_records([str(tmp_path / "a"), str(tmp_path / "b")])
    assert [(r["step"], r["acc"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]
    assert starts == [3]
    assert "pretext" not in comparison_table({"dpc": {"metrics": {"linear_top1": [0.4]}}}, None, {})


def test_run_compare_reads_the_curves_of_the_runs_it_made(tmp_path, monkeypatch):
    """The command's own path, with pretraining and evaluation replaced by fakes (no training)."""
    from vidssl import compare
    from vidssl.models import checkpoint

    def fake_pretrain(pcfg, threads=None):
        for k, run in enumerate(compare.entry_runs(pcfg)):
            fake_run(Path(run), [0.1 * (k + 1)] * 10, chance=0.05)
        return {"pretrain_s": 1.0, "peak_rss_mb": 100.0}

    monkeypatch.setattr(compare, "pretrain_in_child", fake_pretrain)
    monkeypatch.setattr(compare, "split1_evaluator", lambda *a, **k: lambda enc: ({"linear_top1": 0.5}, {}))
    monkeypatch.setattr(checkpoint, "load_encoder", lambda path: None)
    out = tmp_path / "cmp"
    summary = compare.run_compare(str(tmp_path), load_config(CompareConfig, None, [
        f"out_dir={out}", "entries=[cvrl,coclr]", "steps=30"]), quiet=True)
    assert summary["pretext"]["coclr"]["stage_starts"] == [10, 20]
    assert summary["pretext"]["coclr"]["last"] == pytest.approx(0.3)
    assert [len(c) for c in summary["losses"]["coclr"]] == [30]
    assert (out / "pretext.png").exists() and "| 0.10 [0.05] |" in (out / "comparison.md").read_text()


def test_paired_gain_is_the_per_seed_difference_to_its_own_init():
    from vidssl.compare import paired_gain

    rand = {"seeds": [0, 1], "metrics": {"linear_top1": [0.25, 0.5]},
            "per_video": {"linear_top1": [[1, 0, 0, 0], [1, 1, 0, 0]]}}
    meth = {"seeds": [1, 0], "metrics": {"linear_top1": [0.75, 0.5]},   # seeds in another order
            "per_video": {"linear_top1": [[1, 1, 1, 0], [1, 1, 0, 0]]}}
    mean, lo, hi = paired_gain({"random init": rand, "cvrl": meth}, "cvrl")
    assert mean == pytest.approx(0.25) and lo <= mean <= hi
    same = {"seeds": [0, 1], "metrics": rand["metrics"], "per_video": rand["per_video"]}
    assert paired_gain({"random init": rand, "dpc": same}, "dpc") == (0.0, 0.0, 0.0)
    assert paired_gain({"random init": rand}, "random init") is None
    assert paired_gain({"random init": rand, "lss": {**meth, "seeds": [5, 6]}}, "lss") is None  # no common seed
    # an entry training its own encoder is paired with that encoder's random init
    vit = {"seeds": [0], "metrics": {"linear_top1": [0.5]}, "per_video": {"linear_top1": [[1, 0, 1, 0]]}}
    assert paired_gain({"random init": rand, "random init (videomae_tiny)": vit,
                        "videomae": {**vit}}, "videomae")[0] == 0.0
    table = comparison_table({"random init": rand, "cvrl": meth})
    assert "gain over its own init, paired (points)" in table.splitlines()[0]
    assert "| cvrl | 62.5 [" in table and "| +25.0 [" in table


def test_each_seed_starts_from_its_random_init_row(tiny_synthetic, tmp_path):
    """What the paired gain relies on: seed s of an entry trains from the weights the random-init
    row of seed s evaluates (a real run with lr 0 leaves its parameters where they started)."""
    import dataclasses

    import torch

    from vidssl.models.checkpoint import load_encoder
    from vidssl.models.encoders import create_encoder
    from vidssl.train.run import run

    cfg = load_config(CompareConfig, None, ["steps=1", "num_workers=0", "overrides={dpc: {crop_size: 32, num_blocks: 4}}"])
    pcfg = entry_config(cfg, "dpc", str(tiny_synthetic), 3, str(tmp_path / "dpc_seed3"))
    pcfg = dataclasses.replace(pcfg, optim=dataclasses.replace(pcfg.optim, lr=0.0, weight_decay=0.0),
                               train=dataclasses.replace(pcfg.train, device="cpu"))
    trained = load_encoder(run(pcfg).checkpoint)
    torch.manual_seed(3)
    ref = create_encoder(cfg.encoder.name, **cfg.encoder.kwargs)
    params = dict(ref.named_parameters())
    assert params and all(torch.equal(p, params[k]) for k, p in trained.named_parameters())
    torch.manual_seed(4)
    other = dict(create_encoder(cfg.encoder.name, **cfg.encoder.kwargs).named_parameters())
    assert not all(torch.equal(p, other[k]) for k, p in trained.named_parameters())
