"""pretext_learned: whether a run learned its method's own task, from its metrics.jsonl."""

from __future__ import annotations

import json

import pytest

from vidssl.errors import VidsslError
from vidssl.train.monitor import LEARNED_MARGIN, pretext_learned


def write_metrics(path, accs, chance=0.1, key="acc"):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"step": step, "loss": 2.3, key: acc, "chance": chance}) + "\n"
                     for step, acc in enumerate(accs, 1))
    return str(path)


def test_a_run_whose_accuracy_rises_learned(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [0.1] * 6 + [0.3, 0.5] + [0.6, 0.7])
    p = pretext_learned(path, "supervised")
    # 10 steps: quarters of 2 steps (0.1, 0.1 first; 0.6, 0.7 last)
    assert p["metric"] == "acc" and p["steps"] == 10 and p["margin"] == LEARNED_MARGIN
    assert p["first"] == pytest.approx(0.1) and p["last"] == pytest.approx(0.65)
    assert p["chance"] == pytest.approx(0.1) and p["learned"] is True


def test_a_run_near_chance_did_not_learn(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [0.1, 0.125, 0.0625, 0.1875] * 5)
    p = pretext_learned(path, "supervised", {"num_classes": 10})
    assert p["last"] < p["chance"] + LEARNED_MARGIN and p["learned"] is False
    # the margin is the caller's: a lower one accepts the same run
    assert pretext_learned(path, "supervised", margin=0.0)["learned"] is True


def test_chance_comes_from_the_log(tmp_path):
    """chance is what the run logged (here 4 classes), not a guess from the method's defaults."""
    path = write_metrics(tmp_path / "metrics.jsonl", [0.3] * 8, chance=0.25)
    p = pretext_learned(path, "supervised")
    assert p["chance"] == pytest.approx(0.25) and p["learned"] is False


def test_resumed_logs_keep_the_last_record_of_each_step(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [0.1] * 4)
    with open(path, "a", encoding="utf-8") as f:   # a resumed run rewrote step 4, then went on
        f.writelines(json.dumps({"step": step, "loss": 1.0, "acc": 0.9, "chance": 0.1}) + "\n"
                     for step in (4, 5, 6, 7, 8))
    p = pretext_learned(path, "supervised")
    assert p["steps"] == 8 and p["last"] == pytest.approx(0.9) and p["learned"]


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(VidsslError, match="no metrics file at .*metrics.jsonl") as err:
        pretext_learned(str(tmp_path / "run" / "metrics.jsonl"), "supervised")
    assert "\n" not in str(err.value)


def test_empty_or_foreign_logs_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(VidsslError, match="holds no step records"):
        pretext_learned(str(empty), "supervised")
    other = write_metrics(tmp_path / "other.jsonl", [0.5] * 4, key="top1")
    with pytest.raises(VidsslError, match="lacks 'acc' on some steps: not a supervised run"):
        pretext_learned(other, "supervised")


def test_a_method_without_a_pretext_metric_is_refused(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [0.5] * 4)
    with pytest.raises(VidsslError, match="'videomae' declares no pretext metric"):
        pretext_learned(path, "videomae")
