"""Bootstrap intervals over test videos (and seeds, and splits); how results show them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vidssl.errors import VidsslError
from vidssl.eval import EvalResults
from vidssl.eval.intervals import bootstrap_interval, bootstrap_replicates, format_interval


def test_interval_matches_the_binomial_width():
    rng = np.random.default_rng(1)
    hits = (rng.random(400) < 0.4).astype(float)
    lo, hi = bootstrap_interval(hits, resamples=2000, seed=0)
    p = hits.mean()
    half = 1.96 * math.sqrt(p * (1 - p) / len(hits))       # normal approximation
    assert lo < p < hi
    assert lo == pytest.approx(p - half, abs=0.012) and hi == pytest.approx(p + half, abs=0.012)


def test_seeded_and_degenerate():
    hits = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    assert bootstrap_interval(hits, seed=3) == bootstrap_interval(hits, seed=3)
    assert not np.array_equal(bootstrap_replicates([hits], seed=3), bootstrap_replicates([hits], seed=4))
    assert bootstrap_interval(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(VidsslError, match="NaN"):
        bootstrap_interval(np.array([1.0, float("nan")]))
    with pytest.raises(VidsslError):
        bootstrap_interval(np.zeros(0))


def test_seeds_widen_the_interval_and_splits_average():
    rng = np.random.default_rng(0)
    base = (rng.random(300) < 0.5).astype(float)
    lo1, hi1 = bootstrap_interval(base, seed=0)
    # three seeds that disagree a lot on the same videos (paired): the spread between them counts
    seeds = np.stack([base, np.roll(base, 7) * (rng.random(300) < 0.4), np.maximum(base, rng.random(300) < 0.6)])
    lo3, hi3 = bootstrap_interval([seeds], seed=0)
    assert hi3 - lo3 > hi1 - lo1
    assert lo3 < seeds.mean() < hi3
    # two independent test sets (splits): replicates are means of the two resampled means
    reps = bootstrap_replicates([np.zeros(100), np.ones(50)], resamples=50)
    assert np.allclose(reps, 0.5)


def test_format_interval():
    assert format_interval(0.419, [0.375, 0.463]) == "41.9 [37.5, 46.3]"
    assert format_interval(0.419, None) == "41.9"
    assert format_interval(float("nan"), [0.1, 0.2]) == "–"
    assert format_interval(2.5, [2.0, 3.0], scale=1.0) == "2.5 [2.0, 3.0]"


def _results(per_video: dict) -> EvalResults:
    per_split = {int(s): {p: {m: float(np.mean(v)) for m, v in e["outcomes"].items()}
                          for p, e in d.items()} for s, d in per_video.items()}
    return EvalResults("synthetic", "enc", sorted(per_split), ["knn"], per_split,
                       {"per_video": per_video, "config": {"intervals": {"level": 0.95, "resamples": 500, "seed": 0}}})


def test_results_carry_intervals_in_json_and_markdown(tmp_path):
    rng = np.random.default_rng(2)
    pv = {str(s): {"knn": {"videos": [f"v{i}.mp4" for i in range(80)],
                           "outcomes": {"top1": (rng.random(80) < 0.6).astype(float).tolist()}}}
          for s in (1, 2)}
    res = _results(pv)
    iv1 = res.interval("knn", "top1", 1)
    ivm = res.interval("knn", "top1")
    assert iv1[0] < res.per_split[1]["knn"]["top1"] < iv1[1]
    assert ivm[1] - ivm[0] < iv1[1] - iv1[0]                 # two test sets: a narrower mean
    md = res.to_markdown()
    row = next(line for line in md.splitlines() if line.startswith("| knn | top1"))
    assert row.count("[") == 3 and f"[{100 * iv1[0]:.1f}, {100 * iv1[1]:.1f}]" in row
    path = res.to_json(tmp_path / "results.json")
    raw = json.loads(path.read_text())
    assert raw["intervals"]["mean"]["knn"]["top1"] == pytest.approx(ivm)
    assert raw["intervals"]["resamples"] == 500
    back = EvalResults.from_json(path)
    assert back.interval("knn", "top1", 2) == pytest.approx(res.interval("knn", "top1", 2))
    assert back.to_markdown() == md
