"""``pretext_progress``: a run's pretext metric over its first and last logged steps, and its chance."""

from __future__ import annotations

import json

import pytest

from vidssl.errors import ConfigError, VidsslError
from vidssl.train.monitor import pretext_progress


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_first_and_last_tenth_and_the_mean_chance(tmp_path):
    rows = [{"step": s, "loss": 5.0 - s / 10, "acc": s / 100, "chance": 0.02 + (s % 2) / 100}
            for s in range(1, 31)]
    out = pretext_progress(write_rows(tmp_path / "metrics.jsonl", rows), "cvrl")
    assert out["metric"] == "acc" and "instance" in out["what"]
    assert out["steps"] == 30
    assert out["first"] == pytest.approx((0.01 + 0.02 + 0.03) / 3)    # 10% of 30 records: 3
    assert out["last"] == pytest.approx((0.28 + 0.29 + 0.30) / 3)
    assert out["chance"] == pytest.approx(0.025)
    # the same records given as rows, and a path as a str; frac chooses the part
    assert pretext_progress(rows, "cvrl") == out == pretext_progress(str(tmp_path / "metrics.jsonl"), "cvrl")
    assert pretext_progress(rows, "cvrl", frac=0.5)["first"] == pytest.approx(sum(range(1, 16)) / 15 / 100)


def test_params_choose_the_metric_and_masked_methods_use_the_loss(tmp_path):
    rows = [{"step": 1, "loss": 2.0, "acc": 0.1, "acc_gl": 0.3}, {"step": 2, "loss": 1.0, "acc": 0.2, "acc_gl": 0.5}]
    tclr = pretext_progress(rows, "tclr", {"crop_size": 32})
    assert (tclr["metric"], tclr["first"], tclr["last"]) == ("acc_gl", 0.3, 0.5)
    mae = pretext_progress(rows, "videomae")
    assert (mae["metric"], mae["what"], mae["first"], mae["last"], mae["chance"]) == ("loss", "training loss", 2.0, 1.0, None)


def test_old_runs_without_chance_and_runs_without_the_metric(tmp_path):
    old = pretext_progress([{"step": 1, "loss": 1.0, "acc": 0.5}], "vcop")
    assert old["chance"] is None and old["first"] == old["last"] == 0.5 and old["steps"] == 1
    none = pretext_progress([{"step": 1, "loss": 1.0}], "vcop")
    assert none["first"] is None and none["last"] is None and none["steps"] == 0
    path = write_rows(tmp_path / "m.jsonl", [{"step": 1, "loss": 1.0, "acc": 0.25, "chance": 0.5},
                                             {"step": 1, "loss": 1.0, "acc": 0.75, "chance": 0.5}])
    assert pretext_progress(path, "vcop")["first"] == 0.75       # a resumed run: the last record of a step
    with pytest.raises(VidsslError, match="frac must be in"):
        pretext_progress([], "vcop", frac=0.0)
    with pytest.raises(ConfigError):
        pretext_progress([], "no_such_method")
