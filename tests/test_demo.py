"""`vidssl demo` end to end on a tiny synthetic dataset: pretrain, evaluate, report."""

from __future__ import annotations

import json

from tests.conftest import TINY_SYNTHETIC
from vidssl.cli import main


def test_demo_pretrains_evaluates_and_writes_the_report(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "demo"
    synthetic = [f"synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    rc = main(["demo", "--root", str(tiny_synthetic), "--quiet", f"out_dir={out}", "steps=2",
               "supervised_steps=2", "supervised_batch_size=4", "seeds=[0,1]", "batch_size=4", "num_workers=0",
               "eval.num_clips=2", "eval.size=32", "method.params.crop_size=32", *synthetic])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["contenders"]) == ["random init", "tclr", "supervised"]
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
