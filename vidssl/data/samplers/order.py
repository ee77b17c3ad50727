"""Temporal-order pretext samplers: VCOP clip order, Shuffle & Learn frame tuples, O3N odd-one-out.

These layouts have gaps between separate pieces (clips, frames, element windows). For a short
video the gaps shrink first, as far as zero, keeping the pieces in temporal order; what still
does not fit is laid out from frame 0 and fitted by the shared short-video rule
(:mod:`vidssl.data.samplers.short_video`). Prefer ``short_video="pad"`` here: ``"loop"`` wraps
indices and so breaks temporal order on videos shorter than the layout.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vidssl.data.samplers.base import SampledClips
from vidssl.data.samplers.short_video import (
    apply_short_video_rule,
    check_int,
    check_probability,
    check_short_video_rule,
    check_video_length,
    random_start,
    strided_clip,
)

MAX_ORDER_CLIPS = 10  # 10! = 3,628,800 order classes; more is never a sensible classifier


def permutation_from_id(n: int, perm_id: int) -> np.ndarray:
    """The ``perm_id``-th permutation of ``range(n)`` in ``itertools.permutations`` order.

    That order is lexicographic, so ``perm_id`` is the permutation's Lehmer rank:
    ``permutation_from_id(3, 0) == [0, 1, 2]``, ``(3, 1) == [0, 2, 1]``, ...,
    ``(3, 5) == [2, 1, 0]``.

    Returns:
        ``(n,)`` ``int64`` permutation.
    """
    check_int("n", n, 1)
    if isinstance(perm_id, bool) or not isinstance(perm_id, numbers.Integral):
        raise ValueError(f"perm_id must be an integer, got {perm_id!r}")
    if not 0 <= perm_id < math.factorial(n):
        raise ValueError(f"perm_id must be in [0, {n}!) = [0, {math.factorial(n)}), got {perm_id}")
    remaining = list(range(n))
    perm = []
    rest = int(perm_id)
    for i in range(n, 0, -1):
        k, rest = divmod(rest, math.factorial(i - 1))
        perm.append(remaining.pop(k))
    return np.asarray(perm, dtype=np.int64)


def id_from_permutation(perm: Sequence[int] | np.ndarray) -> int:
    """Inverse of :func:`permutation_from_id`: the rank of ``perm`` among its length's permutations.

    Raises:
        ValueError: ``perm`` is not a permutation of ``range(len(perm))``.
    """
    values = [int(p) for p in np.asarray(perm).reshape(-1)]
    n = len(values)
    if n == 0 or sorted(values) != list(range(n)):
        raise ValueError(f"not a permutation of range({n}): {values}")
    remaining = list(range(n))
    rank = 0
    for i, p in enumerate(values):
        k = remaining.index(p)
        rank += k * math.factorial(n - 1 - i)
        remaining.pop(k)
    return rank


@dataclass(frozen=True)
class VCOPSampler:
    """VCOP's shuffled clip tuple (Xu et al., CVPR 2019).

    ``num_clips`` clips of ``clip_len`` consecutive frames, ``interval`` frames apart (paper:
    3 clips of 16 with 8-frame gaps, span 64), from a uniform start. An order id is drawn
    uniformly in ``[0, num_clips!)`` and turned into ``perm = permutation_from_id(num_clips,
    id)``; presented view ``k`` is original clip ``perm[k]`` (so ``views[argsort(perm)]`` is
    back in temporal order). Short videos: the interval shrinks to
    ``(num_frames - num_clips * clip_len) // (num_clips - 1)`` (at least 0) so the clips still fit
    in order; shorter than ``num_clips * clip_len``, the clips are laid out back to back from
    frame 0 and fitted by the short-video rule.

    Args:
        clip_len: frames per clip.
        interval: frames skipped between the end of one clip and the start of the next.
        num_clips: clips per tuple, 2 to 10 (``num_clips!`` classes).
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"clip0" .. "clip{num_clips-1}"`` in presented (shuffled) order,
    each ``(clip_len,)``; targets ``{"order": id, "permutation": (num_clips,) int64}``; info
    ``{"interval": the interval actually used}``.
    """

    clip_len: int = 16
    interval: int = 8
    num_clips: int = 3
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("clip_len", self.clip_len, 1)
        check_int("interval", self.interval, 0)
        check_int("num_clips", self.num_clips, 2)
        if self.num_clips > MAX_ORDER_CLIPS:
            raise ValueError(f"num_clips must be <= {MAX_ORDER_CLIPS}, got {self.num_clips}")
        check_short_video_rule(self.short_video)

    @property
    def num_classes(self) -> int:
        """Order classes, ``num_clips!``."""
        return math.factorial(self.num_clips)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.clip_len,) * self.num_clips

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(f"clip{k}" for k in range(self.num_clips))

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one shuffled tuple (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        n, length = self.num_clips, self.clip_len
        fitting_gap = max((video_frames - n * length) // (n - 1), 0)
        gap = min(self.interval, fitting_gap)
        start = random_start(rng, video_frames, n * length + (n - 1) * gap)
        clips = [strided_clip(start + i * (length + gap), length, 1) for i in range(n)]
        order = int(rng.integers(0, self.num_classes))
        perm = permutation_from_id(n, order)
        views = tuple(
            apply_short_video_rule(clips[int(p)], video_frames, self.short_video) for p in perm
        )
        return SampledClips(
            views=views,
            names=self.view_names,
            targets={"order": order, "permutation": perm},
            info={"interval": gap},
        )


@dataclass(frozen=True)
class ShuffleLearnSampler:
    """Shuffle & Learn's frame tuples, in or out of order (Misra et al., ECCV 2016).

    Draws ``tuple_len + 2`` increasing frames ``f0 < f1 < ... < f{L+1}`` (for ``L = 3``: ``a <
    b < c < d < e``) with each consecutive gap uniform in ``[min_gap, max_gap]``, from a uniform
    start. With probability ``positive_prob`` the tuple is ``(f1, ..., fL)`` = ``(b, c, d)``,
    label 1; otherwise its middle element is replaced by ``f0`` or ``f{L+1}`` (even odds), e.g.
    ``(b, a, d)`` or ``(b, e, d)``, label 0. The paper samples tuples in high-motion windows;
    that selection needs decoded frames and is not done here. Short videos: the gap bounds are
    capped at ``(num_frames - 1) // (L + 1)`` (and at least 1); with fewer than ``L + 2`` frames
    the layout no longer fits, is fitted by the short-video rule, and a negative tuple may then
    look in order (its label stays 0: it is what was drawn).

    Args:
        tuple_len: frames per tuple, ``>= 3`` (paper: 3).
        min_gap: smallest gap between consecutive drawn frames (confirm against the paper).
        max_gap: largest gap between consecutive drawn frames (confirm against the paper).
        positive_prob: probability of an in-order tuple (paper: balanced).
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"frame0" .. "frame{L-1}"``, each ``(1,)``; targets
    ``{"in_order": 1 or 0}``.
    """

    tuple_len: int = 3
    min_gap: int = 4
    max_gap: int = 15
    positive_prob: float = 0.5
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("tuple_len", self.tuple_len, 3)
        check_int("min_gap", self.min_gap, 1)
        check_int("max_gap", self.max_gap, 1)
        if self.max_gap < self.min_gap:
            raise ValueError(f"max_gap ({self.max_gap}) must be >= min_gap ({self.min_gap})")
        check_probability("positive_prob", self.positive_prob)
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (1,) * self.tuple_len

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(f"frame{k}" for k in range(self.tuple_len))

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one tuple (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        num_gaps = self.tuple_len + 1
        hi = max(min(self.max_gap, (video_frames - 1) // num_gaps), 1)
        lo = min(self.min_gap, hi)
        gaps = rng.integers(lo, hi + 1, size=num_gaps)
        start = random_start(rng, video_frames, 1 + int(gaps.sum()))
        frames = start + np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
        tuple_frames = frames[1:-1].copy()
        in_order = bool(rng.random() < self.positive_prob)
        if not in_order:
            tuple_frames[self.tuple_len // 2] = frames[0] if rng.random() < 0.5 else frames[-1]
        tuple_frames = apply_short_video_rule(tuple_frames, video_frames, self.short_video)
        views = tuple(tuple_frames[k : k + 1] for k in range(self.tuple_len))
        return SampledClips(views=views, names=self.view_names, targets={"in_order": int(in_order)})


@dataclass(frozen=True)
class OddOneOutSampler:
    """O3N's odd-one-out question (Fernando et al., CVPR 2017; details marked *confirm*).

    ``num_elements`` elements (``N + 1``, paper: 6), each ``element_len`` frames (``W``). Every
    element uses constrained-consecutive sampling: a window of ``ceil(window_scale * W)``
    consecutive frames at a uniform start, and ``W`` distinct frames drawn inside it, in order.
    The element at a uniform position ``odd`` gets its frames permuted by a random permutation
    that leaves them out of order; the others stay in order (their window positions are
    independent, so their order among themselves carries nothing). Short videos: the window
    shrinks to the video; with fewer than ``W`` frames every element is ``0 .. W-1`` fitted by
    the short-video rule (under ``"pad"`` the odd element is still out of order whenever the
    video has 2 frames or more).

    Args:
        num_elements: elements per question, ``N + 1 >= 2`` (paper: 6).
        element_len: frames per element, ``W >= 2`` (confirm; 8 is a choice, not the paper's).
        window_scale: window size as a multiple of ``W``, ``>= 1`` (paper: 1.5; confirm).
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"elem0" .. "elem{N}"``, each ``(W,)``; targets ``{"odd":
    position of the permuted element}``. Every view but the odd one is non-decreasing.
    """

    num_elements: int = 6
    element_len: int = 8
    window_scale: float = 1.5
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_elements", self.num_elements, 2)
        check_int("element_len", self.element_len, 2)
        if (
            isinstance(self.window_scale, bool)
            or not isinstance(self.window_scale, numbers.Real)
            or not math.isfinite(self.window_scale)
            or self.window_scale < 1.0
        ):
            raise ValueError(
                f"window_scale must be a finite number >= 1, got {self.window_scale!r}"
            )
        check_short_video_rule(self.short_video)

    @property
    def window_len(self) -> int:
        """Frames per sampling window, ``ceil(window_scale * element_len)``."""
        return math.ceil(round(self.window_scale * self.element_len, 9))

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.element_len,) * self.num_elements

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(f"elem{k}" for k in range(self.num_elements))

    def _ordered_element(self, video_frames: int, rng: np.random.Generator) -> np.ndarray:
        """``(W,)`` non-decreasing indices, fitted to the video."""
        if video_frames < self.element_len:
            frames = np.arange(self.element_len, dtype=np.int64)
        else:
            window = min(self.window_len, video_frames)
            start = random_start(rng, video_frames, window)
            picks = np.sort(rng.choice(window, size=self.element_len, replace=False))
            frames = start + picks.astype(np.int64)
        return apply_short_video_rule(frames, video_frames, self.short_video)

    @staticmethod
    def _out_of_order(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``frames`` permuted so they are not non-decreasing (unchanged if all equal)."""
        if np.all(frames == frames[0]):
            return frames
        for _ in range(64):
            shuffled = frames[rng.permutation(len(frames))]
            if np.any(np.diff(shuffled) < 0):
                return shuffled
        return frames[::-1].copy()  # a non-constant sorted array reversed is out of order

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one question (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        odd = int(rng.integers(0, self.num_elements))
        views = []
        for k in range(self.num_elements):
            element = self._ordered_element(video_frames, rng)
            views.append(self._out_of_order(element, rng) if k == odd else element)
        return SampledClips(views=tuple(views), names=self.view_names, targets={"odd": odd})
