"""J&F, success AUC and MOT metrics on cases whose answers are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidssl.errors import ConfigError
from vidssl.track.metrics import (boundary_f, boundary_radius, mot_accumulator, mot_summary,
                                  precision_at, region_iou, seg2bmap, sequence_jf, success_auc,
                                  summarize_jf)


def band(c0: int, width: int, size: int = 100) -> np.ndarray:
    """A full-height vertical band of columns ``c0 .. c0 + width - 1``."""
    m = np.zeros((size, size), dtype=bool)
    m[:, c0:c0 + width] = True
    return m


def square(r0: int, c0: int, side: int, size: int = 100) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[r0:r0 + side, c0:c0 + side] = True
    return m


def test_identical_masks_score_one():
    m = square(30, 30, 20)
    assert region_iou(m, m) == 1.0
    assert boundary_f(m, m) == 1.0


def test_disjoint_masks_score_zero():
    a, b = square(10, 10, 15), square(60, 60, 15)
    assert region_iou(a, b) == 0.0
    assert boundary_f(a, b) == 0.0


def test_empty_masks():
    empty = np.zeros((50, 50), dtype=bool)
    assert region_iou(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_iou(empty, square(5, 5, 5, 50)) == 0.0
    assert boundary_f(empty, square(5, 5, 5, 50)) == 0.0


def test_davis_tolerance_is_0008_of_the_diagonal():
    assert boundary_radius((100, 100)) == math.ceil(0.008 * math.hypot(100, 100)) == 2
    assert boundary_radius((480, 854)) == 8  # ceil(7.84): DAVIS 480p


def test_band_boundary_is_two_lines():
    b = seg2bmap(band(20, 20))
    assert b.sum() == 2 * 100
    assert set(np.nonzero(b.any(0))[0]) == {19, 39}  # bg pixel left of the band, last fg column


@pytest.mark.parametrize("shift,j,f", [
    (2, 18 / 22, 1.0),   # shift <= tolerance (2 px): every boundary pixel matched
    (3, 17 / 23, 0.0),   # shift > tolerance: no boundary pixel within 2 px
    (20, 0.0, 0.5),      # adjacent bands: the shared edge matches, the two outer edges do not
])
def test_shifted_band_known_values(shift, j, f):
    gt, pred = band(20, 20), band(20 + shift, 20)
    assert region_iou(pred, gt) == pytest.approx(j)
    assert boundary_f(pred, gt) == pytest.approx(f)


def test_shifted_square_iou():
    gt, pred = square(40, 40, 20), square(40, 45, 20)
    assert region_iou(pred, gt) == pytest.approx(15 * 20 / (25 * 20))


def test_sequence_jf_skips_first_and_last_frame():
    gt = np.stack([square(40, 40, 20).astype(int)] * 4)
    pred = gt.copy()
    pred[0] = 0
    pred[3] = 0  # wrong first and last frames do not count
    scores = sequence_jf(pred, gt)
    assert scores == {1: {"J": 1.0, "F": 1.0}}
    pred[1] = (square(40, 45, 20)).astype(int)
    s = sequence_jf(pred, gt)[1]
    assert s["J"] == pytest.approx((0.6 + 1.0) / 2)
    summary = summarize_jf({"a": sequence_jf(pred, gt)})
    assert summary["J&F"] == pytest.approx((s["J"] + s["F"]) / 2) and summary["objects"] == 1


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(ConfigError):
        region_iou(np.zeros((4, 4)), np.zeros((4, 5)))


def test_success_auc_known_values():
    gt = np.array([[10, 10, 10, 10]] * 4, dtype=float)
    assert success_auc(gt, gt) == pytest.approx(20 / 21)  # IoU 1 exceeds every threshold but 1
    half = gt + np.array([10 / 3, 0, 0, 0])  # IoU = (20/3) / (40/3) = 0.5
    assert success_auc(half, gt) == pytest.approx(10 / 21)  # thresholds 0 .. 0.45
    with_nan = np.vstack([gt, [[np.nan] * 4]])
    assert success_auc(np.vstack([gt, [[0, 0, 1, 1]]]), with_nan) == pytest.approx(20 / 21)
    assert precision_at(half, gt) == 1.0 and precision_at(gt + 30, gt) == 0.0


def _track(x0: float, dx: float, y: float, frames: int) -> list[np.ndarray]:
    return [np.array([x0 + dx * t, y, 10.0, 10.0]) for t in range(frames)]


def test_scripted_crossing_counts_two_id_switches():
    """Two objects cross at frame 5; the hypothesis swaps their ids after the crossing:
    2 switches, MOTA = 1 - 2/20, IDF1 = 10/20 (each hypothesis id is right half the time)."""
    a, b = _track(0, 10, 20, 10), _track(90, -10, 20, 10)
    gt = {f + 1: [(1, a[f]), (2, b[f])] for f in range(10)}
    hyp = {f + 1: ([(7, a[f]), (8, b[f])] if f < 5 else [(8, a[f]), (7, b[f])]) for f in range(10)}
    s = mot_summary({"cross": mot_accumulator(gt, hyp, 10)})["cross"]
    assert s["num_switches"] == 2
    assert s["mota"] == pytest.approx(0.9)
    assert s["idf1"] == pytest.approx(0.5)
    good = {f + 1: [(7, a[f]), (8, b[f])] for f in range(10)}
    s = mot_summary({"cross": mot_accumulator(gt, good, 10)})["cross"]
    assert (s["num_switches"], s["mota"], s["idf1"]) == (0, 1.0, 1.0)


def test_mot_misses_and_false_positives():
    a = _track(0, 10, 20, 4)
    gt = {f + 1: [(1, a[f])] for f in range(4)}
    hyp = {1: [(1, a[0])], 2: [(1, a[1] + np.array([50, 50, 0, 0]))], 3: [(1, a[2])]}
    s = mot_summary({"s": mot_accumulator(gt, hyp, 4)})["s"]
    assert s["num_misses"] == 2 and s["num_false_positives"] == 1
    assert s["mota"] == pytest.approx(1 - 3 / 4)
