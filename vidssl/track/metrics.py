"""Tracking metrics: DAVIS J&F (VOS), OTB success AUC (SOT), CLEAR-MOT MOTA and IDF1 (MOT).

- **J** (region similarity) is the IoU of a predicted and a ground-truth mask; two empty masks
  score 1 (DAVIS convention).
- **F** (boundary accuracy) follows the DAVIS benchmark: boundaries are the pixels where a mask
  differs from its east, south or south-east neighbour (``seg2bmap`` at the mask's own size), a
  boundary pixel counts as matched when the other boundary has a pixel within
  ``ceil(0.008 * image diagonal)`` pixels (a disk), and F is the harmonic mean of the matched
  fractions (precision over the prediction's boundary, recall over the ground truth's). Two
  empty boundaries score 1, exactly one empty boundary scores 0. Written here (with
  ``scipy.ndimage``) because the DAVIS evaluation code is not an installable package; tested on
  hand-computed cases in ``tests/track/test_metrics.py``.
- A sequence's J (F) per object is the mean over its frames **without the first and the last**
  (the first frame is given; DAVIS-2017 evaluation drops both); J&F is the mean of the J-mean
  and the F-mean over all objects of all sequences.
- **Success AUC** (OTB): the fraction of frames whose box IoU exceeds each of 21 thresholds
  ``0, 0.05, ..., 1``, averaged over the thresholds. Frames without a ground-truth box (NaN)
  are left out. Precision at 20 px (centre distance) is reported alongside.
- **MOTA, IDF1, ID switches** come from ``motmetrics`` (``pip install 'vidssl[track]'``); the
  IoU distance matrix (match when IoU >= 0.5) is computed here because motmetrics 1.4's own
  ``iou_matrix`` calls ``np.asfarray``, which NumPy 2 removed.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Sequence

import numpy as np

from vidssl.errors import ConfigError, MissingDependencyError

BOUNDARY_TOLERANCE = 0.008  # DAVIS: fraction of the image diagonal
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
MOT_IOU_THRESHOLD = 0.5


# ------------------------------------------------------------------------------------ VOS --
def region_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of two boolean masks ``(H, W)``; 1.0 when both are empty."""
    pred, gt = _pair(pred, gt)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Boundary map of a boolean mask ``(H, W)``: pixels whose east, south or south-east
    neighbour differs (the last row / column compare with what exists)."""
    m = np.asarray(mask, dtype=bool)
    east = np.zeros_like(m)
    south = np.zeros_like(m)
    se = np.zeros_like(m)
    east[:, :-1] = m[:, 1:]
    south[:-1, :] = m[1:, :]
    se[:-1, :-1] = m[1:, 1:]
    b = (m ^ east) | (m ^ south) | (m ^ se)
    b[-1, :] = m[-1, :] ^ east[-1, :]
    b[:, -1] = m[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape: Sequence[int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Match radius in pixels: ``ceil(tolerance * diagonal)`` (a tolerance >= 1 is pixels)."""
    if tolerance >= 1:
        return int(round(tolerance))
    return int(math.ceil(tolerance * math.hypot(shape[0], shape[1])))


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (yy * yy + xx * xx) <= radius * radius


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F of two boolean masks ``(H, W)`` (DAVIS boundary measure, see the module docstring)."""
    try:
        from scipy.ndimage import binary_dilation
    except ImportError:
        raise MissingDependencyError(package="scipy", extra="track",
                                     feature="the boundary measure F") from None

    pred, gt = _pair(pred, gt)
    bp, bg = seg2bmap(pred), seg2bmap(gt)
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    r = boundary_radius(pred.shape, tolerance)
    disk = _disk(r)
    gt_dil = binary_dilation(bg, structure=disk) if r > 0 else bg
    pred_dil = binary_dilation(bp, structure=disk) if r > 0 else bp
    precision = float((bp & gt_dil).sum()) / n_p
    recall = float((bg & pred_dil).sum()) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ConfigError(f"masks must be two (H, W) arrays of one shape, got {pred.shape} "
                          f"and {gt.shape}")
    return pred, gt


class SequenceJF:
    """Per-object J and F of one sequence, accumulated frame by frame (so neither the
    predicted nor the ground-truth label maps of a whole sequence need be in memory).

    Args:
        num_frames: the sequence's length ``T`` (frames ``1 .. T-2`` are scored; all of them
            when ``T < 3``).
        object_ids: objects to score (non-zero ids).

    Call :meth:`add` with every frame in order (unscored ones are skipped), then
    :meth:`result`.
    """

    def __init__(self, num_frames: int, object_ids: Iterable[int],
                 tolerance: float = BOUNDARY_TOLERANCE):
        self.num_frames, self.tolerance = num_frames, tolerance
        self.ids = sorted(int(k) for k in object_ids if int(k) != 0)
        self.scored = range(1, num_frames - 1) if num_frames >= 3 else range(num_frames)
        self.js: dict[int, list[float]] = {k: [] for k in self.ids}
        self.fs: dict[int, list[float]] = {k: [] for k in self.ids}
        self.next = 0

    def add(self, t: int, pred: np.ndarray, gt: np.ndarray) -> None:
        """Frame ``t``'s label maps ``(H, W)`` (frames must come in order, ``0 .. T-1``)."""
        if t != self.next or t >= self.num_frames:
            raise ConfigError(f"J&F: frame {t} given, expected frame {self.next} of "
                              f"{self.num_frames}")
        self.next += 1
        if t not in self.scored:
            return
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ConfigError(f"label maps must be two (H, W) arrays of one shape, got "
                              f"{pred.shape} and {gt.shape} (frame {t})")
        for k in self.ids:
            self.js[k].append(region_iou(pred == k, gt == k))
            self.fs[k].append(boundary_f(pred == k, gt == k, self.tolerance))

    def result(self) -> dict[int, dict[str, float]]:
        """``{object_id: {"J": mean, "F": mean}}`` (every frame must have been added)."""
        if self.next != self.num_frames:
            raise ConfigError(f"J&F: {self.next} of {self.num_frames} frames were given")
        return {k: {"J": float(np.mean(self.js[k])), "F": float(np.mean(self.fs[k]))}
                for k in self.ids}


def sequence_jf(pred: np.ndarray, gt: np.ndarray, object_ids: Iterable[int] | None = None,
                tolerance: float = BOUNDARY_TOLERANCE) -> dict[int, dict[str, float]]:
    """Per-object J-mean and F-mean of one sequence (whole arrays; :class:`SequenceJF` takes
    them a frame at a time).

    Args:
        pred, gt: integer label maps ``(T, H, W)`` (0 = background, k = object k).
        object_ids: objects to score (default: every non-zero id of ``gt``).

    Returns:
        ``{object_id: {"J": mean, "F": mean}}`` over frames ``1 .. T-2`` (all frames when
        ``T < 3``).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ConfigError(f"label maps must be two (T, H, W) arrays of one shape, got "
                          f"{pred.shape} and {gt.shape}")
    acc = SequenceJF(gt.shape[0], object_ids if object_ids is not None else np.unique(gt),
                     tolerance)
    for t in range(gt.shape[0]):
        acc.add(t, pred[t], gt[t])
    return acc.result()


def summarize_jf(per_sequence: dict[str, dict[int, dict[str, float]]]) -> dict[str, float]:
    """``{"J&F", "J", "F", "objects"}``: means over every object of every sequence."""
    js = [o["J"] for objs in per_sequence.values() for o in objs.values()]
    fs = [o["F"] for objs in per_sequence.values() for o in objs.values()]
    if not js:
        return {"J&F": float("nan"), "J": float("nan"), "F": float("nan"), "objects": 0}
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {"J&F": (j + f) / 2, "J": j, "F": f, "objects": len(js)}


# ------------------------------------------------------------------------------------ SOT --
def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of boxes ``(N, 4)`` ``(x, y, w, h)``; NaN where either row is NaN."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    iou[np.isnan(a).any(1) | np.isnan(b).any(1)] = np.nan
    return iou


def success_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Fraction of frames (with a ground-truth box) whose IoU exceeds each threshold."""
    iou = box_iou_xywh(pred, gt)
    iou = iou[~np.isnan(iou)]
    if iou.size == 0:
        return np.full(len(SUCCESS_THRESHOLDS), np.nan)
    return np.array([(iou > t).mean() for t in SUCCESS_THRESHOLDS])


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    """OTB success AUC of one sequence's boxes ``(T, 4)`` ``(x, y, w, h)``."""
    return float(np.mean(success_curve(pred, gt)))


def precision_at(pred: np.ndarray, gt: np.ndarray, pixels: float = 20.0) -> float:
    """Fraction of frames whose box centre is within ``pixels`` of the ground truth's."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    d = np.hypot(pred[:, 0] + pred[:, 2] / 2 - gt[:, 0] - gt[:, 2] / 2,
                 pred[:, 1] + pred[:, 3] / 2 - gt[:, 1] - gt[:, 3] / 2)
    d = d[~np.isnan(d)]
    return float((d <= pixels).mean()) if d.size else float("nan")


# ------------------------------------------------------------------------------------ MOT --
def _motmetrics():
    try:
        import motmetrics
    except ImportError:
        raise MissingDependencyError(package="motmetrics", extra="track",
                                     feature="MOT evaluation (MOTA, IDF1)") from None
    return motmetrics


def iou_distance(gt_xywh: np.ndarray, hyp_xywh: np.ndarray,
                 max_distance: float = 1 - MOT_IOU_THRESHOLD) -> np.ndarray:
    """``1 - IoU`` matrix ``(G, H)`` for motmetrics; NaN (no match allowed) above
    ``max_distance``."""
    g = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    h = np.asarray(hyp_xywh, dtype=np.float64).reshape(-1, 4)
    if len(g) == 0 or len(h) == 0:
        return np.empty((len(g), len(h)))
    iou = box_iou_xywh(np.repeat(g, len(h), axis=0), np.tile(h, (len(g), 1))).reshape(len(g), len(h))
    dist = 1.0 - iou
    dist[dist > max_distance] = np.nan
    return dist


def mot_accumulator(gt: dict[int, list[tuple[int, np.ndarray]]],
                    hyp: dict[int, list[tuple[int, np.ndarray]]], num_frames: int):
    """A ``motmetrics.MOTAccumulator`` over frames ``1 .. num_frames``.

    Args:
        gt, hyp: ``{frame: [(id, box_xywh), ...]}`` (frames are 1-based, as in MOT files).
    """
    mm = _motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(1, num_frames + 1):
        g = gt.get(f, [])
        h = hyp.get(f, [])
        dist = iou_distance(np.array([b for _, b in g]), np.array([b for _, b in h]))
        acc.update([i for i, _ in g], [i for i, _ in h], dist, frameid=f)
    return acc


MOT_METRICS = ("mota", "idf1", "num_switches", "num_false_positives", "num_misses",
               "num_objects", "mostly_tracked", "mostly_lost", "num_fragmentations", "motp")


def mot_summary(accumulators: dict[str, object]) -> dict[str, dict[str, float]]:
    """``{sequence or "OVERALL": {metric: value}}`` for :data:`MOT_METRICS` (MOTP here is the
    mean ``1 - IoU`` of matches, motmetrics' convention)."""
    mm = _motmetrics()
    names = list(accumulators)
    mh = mm.metrics.create()
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # motmetrics logs its timings on the root logger
    try:
        df = mh.compute_many([accumulators[n] for n in names], metrics=list(MOT_METRICS),
                             names=names, generate_overall=True)
    finally:
        root.setLevel(level)
    return {str(idx): {k: float(row[k]) for k in MOT_METRICS} for idx, row in df.iterrows()}
