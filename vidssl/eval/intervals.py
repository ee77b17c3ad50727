"""95% intervals for numbers that are means over test videos: a percentile bootstrap.

A metric such as top-1 or hit@k is the mean of a per-video outcome (1 = correct, 0 = wrong).
Its interval comes from resampling the test videos with replacement (``resamples`` times,
seeded, 1000 by default) and taking the 2.5th and 97.5th percentiles of the resampled means.
With several seeds evaluated on the same test videos, each resample also draws the seeds with
replacement (a two-level bootstrap: the interval then carries the spread between seeds as well
as the test-set sampling noise); with several splits (independent test sets), each split is
resampled on its own and the resampled means are averaged, like the mean over splits itself.

The point estimate is always the plain mean (never the bootstrap mean); the interval is shown
as ``41.9 [37.5, 46.3]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from vidssl.errors import VidsslError

__all__ = ["bootstrap_interval", "bootstrap_replicates", "format_interval", "DEFAULT_RESAMPLES"]

DEFAULT_RESAMPLES = 1000


def _as_seeds_by_videos(values: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise VidsslError(f"per-video outcomes must be (videos,) or (seeds, videos) and non-empty, "
                          f"got shape {arr.shape}")
    return arr


def bootstrap_replicates(groups: Sequence[np.ndarray], *, resamples: int = DEFAULT_RESAMPLES,
                         seed: int = 0) -> np.ndarray:
    """``(resamples,)`` bootstrap replicates of the mean over ``groups`` of each group's mean.

    Each group is one test set (a split): ``(N,)`` per-video outcomes, or ``(S, N)`` for ``S``
    seeds evaluated on the same ``N`` videos (videos resampled jointly across seeds, seeds
    resampled with replacement). Groups are resampled independently. NaN outcomes are not
    allowed (a metric that could not be computed has no interval).
    """
    if resamples < 1:
        raise VidsslError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    arrays = [_as_seeds_by_videos(g) for g in groups]
    if not arrays:
        raise VidsslError("no outcomes to bootstrap")
    for arr in arrays:
        if not np.isfinite(arr).all():
            raise VidsslError("per-video outcomes hold NaN or infinite values")
        s, n = arr.shape
        video_means = np.empty((s, resamples))
        for start in range(0, resamples, 256):          # bounded memory: 256 x N indices at once
            stop = min(resamples, start + 256)
            idx = rng.integers(0, n, size=(stop - start, n))
            video_means[:, start:stop] = arr[:, idx].mean(axis=2)
        if s == 1:
            total += video_means[0]
        else:
            seeds = rng.integers(0, s, size=(resamples, s))
            total += video_means[seeds, np.arange(resamples)[:, None]].mean(axis=1)
    return total / len(arrays)


def bootstrap_interval(groups: Sequence[np.ndarray] | np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval ``(low, high)`` at ``level`` of the mean of per-video outcomes.

    ``groups``: one ``(N,)`` / ``(S, N)`` array, or a list of them (one per split); see
    :func:`bootstrap_replicates`.
    """
    if not 0.0 < level < 1.0:
        raise VidsslError(f"interval level must be in (0, 1), got {level}")
    if isinstance(groups, np.ndarray) or (len(groups) and np.isscalar(groups[0])):
        groups = [np.asarray(groups)]
    reps = bootstrap_replicates(groups, resamples=resamples, seed=seed)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return float(lo), float(hi)


def format_interval(mean: float | None, interval: Sequence[float] | None, scale: float = 100.0,
                    digits: int = 1) -> str:
    """``"41.9 [37.5, 46.3]"`` (``scale`` 100 for fractions shown as percentages); ``"–"`` for a
    missing or NaN mean; the bare mean when there is no interval."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{scale * mean:.{digits}f}"
    if interval is not None and len(interval) == 2 and all(v is not None for v in interval):
        text += f" [{scale * interval[0]:.{digits}f}, {scale * interval[1]:.{digits}f}]"
    return text
