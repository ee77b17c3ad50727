"""`vidssl demo` end to end on a tiny synthetic dataset: pretrain, evaluate, report."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_SYNTHETIC
from vidssl.cli import main


def test_demo_pretrains_evaluates_and_writes_the_report(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "demo"
    synthetic = [f"synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    rc = main(["demo", "--root", str(tiny_synthetic), "--quiet", f"out_dir={out}", "steps=2",
               "supervised_steps=2", "supervised_batch_size=4", "seeds=[0,1]", "batch_size=4", "num_workers=0",
               "eval.num_clips=2", "eval.size=32", "method.params.crop_size=32", *synthetic,
               "supervised_margin=-1"])   # 2 steps learn nothing: the check has its own tests below
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["contenders"]) == ["random init", "tclr", "supervised"]
    # the supervised bound: one run per seed, each checked
    assert summary["contenders"]["supervised"]["seeds"] == [0, 1]
    assert [c["seed"] for c in summary["supervised_checks"]] == [0, 1]
    assert all(c["learned"] and c["metric"] == "acc" for c in summary["supervised_checks"])
    assert len(summary["losses"]["supervised"]) == 2
    tclr = summary["contenders"]["tclr"]
    assert tclr["seeds"] == [0, 1] and len(tclr["metrics"]["linear_top1"]) == 2
    assert all(0.0 <= v <= 1.0 for v in tclr["metrics"]["linear_top1"])
    assert any(k.startswith("diagnostics_probe/") for k in tclr["metrics"])
    # per-video outcomes per seed (intervals over videos and seeds); BN mode said, other mode kept
    rows = tclr["per_video"]["linear_top1"]
    assert len(rows) == 2 and len(rows[0]) == len(rows[1]) > 0 and set(rows[0]) <= {0.0, 1.0}
    assert "bn_keep/linear_top1" in tclr["metrics"]
    assert any(n.startswith("BatchNorm: recompute") for n in summary["notes"])
    html = (out / "report.html").read_text()
    assert len(summary["retrieval"]) >= 2 and len(summary["retrieval"][0]["neighbors"]) == 3
    for png in ("loss.png", "probes.png", "retrieval.png"):
        assert (out / png).stat().st_size > 1000 and png in html
    assert "linear_top1" in html and "random init" in html and "bootstrap interval" in html
    import re
    assert re.search(r"<td>\d+\.\d \[\d+\.\d, \d+\.\d\]</td>", html)
    printed = " ".join(capsys.readouterr().out.split())
    assert "linear probe" in printed and "report:" in printed


def _stuck_supervised_seeds(monkeypatch, stuck: set[int]) -> None:
    """Train for real, but rewrite the metrics.jsonl of the supervised runs of seeds ``stuck`` as a
    run whose training accuracy stayed at 0 (the others' at 1); evaluation is faked (fast)."""
    import vidssl.demo
    import vidssl.train.run

    real_run = vidssl.train.run.run

    def run(cfg, resume=None):
        result = real_run(cfg, resume)
        if cfg.method.name == "supervised":
            acc = 0.0 if cfg.train.seed in stuck else 1.0
            with open(f"{result.out_dir}/metrics.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"step": step, "loss": 1.4, "acc": acc, "chance": 0.25}) + "\n"
                             for step in (1, 2, 3, 4))
        return result

    monkeypatch.setattr(vidssl.train.run, "run", run)
    monkeypatch.setattr(vidssl.demo, "split1_evaluator", lambda *a, **k: lambda encoder: (
        {"linear_top1": 0.5}, {"linear_top1": [1.0, 0.0, 1.0, 0.0]}))
    monkeypatch.setattr(vidssl.demo, "retrieval_examples", lambda *a, **k: [])


def _tiny_demo(tiny_synthetic, out):
    from vidssl.data.synthetic.options import SyntheticOptions
    from vidssl.demo import DemoConfig, DemoEval, run_demo
    from vidssl.train.config import MethodConfig

    cfg = DemoConfig(out_dir=str(out), synthetic=SyntheticOptions(**TINY_SYNTHETIC), seeds=[0, 1],
                     method=MethodConfig("tclr", {"crop_size": 32}), steps=1, batch_size=4,
                     supervised_steps=4, supervised_batch_size=4, num_workers=0,
                     eval=DemoEval(num_clips=1, size=32))
    return run_demo(str(tiny_synthetic), cfg, quiet=True)


def test_a_supervised_seed_that_did_not_learn_is_left_out_of_the_bound(tiny_synthetic, tmp_path,
                                                                         monkeypatch):
    _stuck_supervised_seeds(monkeypatch, stuck={1})
    summary = _tiny_demo(tiny_synthetic, tmp_path / "demo")
    assert summary["contenders"]["supervised"]["seeds"] == [0]
    assert summary["contenders"]["random init"]["seeds"] == [0, 1]
    checks = {c["seed"]: c for c in summary["supervised_checks"]}
    assert checks[0]["learned"] and not checks[1]["learned"] and checks[1]["steps"] == 4
    note = "supervised seed 1 did not learn: training accuracy 0.0% vs chance 25.0% (last quarter of 4 steps)"
    assert note in summary["notes"]
    assert any(n.startswith("supervised uses the action labels (upper bound); seeds [0] of [0, 1]")
               for n in summary["notes"])
    assert len(summary["losses"]["supervised"]) == 2      # the failed run's curve is still drawn
    saved = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [c["learned"] for c in saved["supervised_checks"]] == [True, False]
    assert note in (tmp_path / "demo" / "report.html").read_text()


def test_no_supervised_row_when_no_seed_learned(tiny_synthetic, tmp_path, monkeypatch):
    _stuck_supervised_seeds(monkeypatch, stuck={0, 1})
    summary = _tiny_demo(tiny_synthetic, tmp_path / "demo")
    assert list(summary["contenders"]) == ["random init", "tclr"]
    notes = [n for n in summary["notes"] if "supervised" in n]
    assert [n.split(":")[0] for n in notes] == ["supervised seed 0 did not learn",
                                                "supervised seed 1 did not learn",
                                                "no supervised seed learned (training accuracy below chance + 15 points on every seed)"]
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "no supervised bound" in html and "<th>supervised</th>" not in html


@pytest.mark.parametrize("learned,expect", [
    ([True, True, True], ["supervised uses the action labels (upper bound); seeds [0, 1, 2] of [0, 1, 2]"]),
    ([True, False, True], ["supervised uses the action labels (upper bound); seeds [0, 2] of [0, 1, 2]",
                           ("supervised seed 1 did not learn: training accuracy 12.0% vs chance 10.0% "
                            "(last quarter of 200 steps)")]),
    ([], []),
])
def test_supervised_notes(learned, expect):
    from vidssl.demo import supervised_notes

    checks = [{"seed": s, "learned": ok, "last": 0.6 if ok else 0.12, "chance": 0.1, "steps": 200,
               "margin": 0.15} for s, ok in enumerate(learned)]
    notes = supervised_notes(checks)
    assert [n.split(" (a seed counts")[0] for n in notes] == expect
