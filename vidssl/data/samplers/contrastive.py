"""Samplers for contrastive methods: CVRL clip pairs, TCLR global/local clips, CoCLR pairs.

Strides inside a clip are never changed for short videos; layouts that do not fit start at
frame 0 and are fitted by the shared short-video rule (:mod:`vidssl.data.samplers.short_video`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from vidssl.data.samplers.base import SampledClips
from vidssl.data.samplers.short_video import (
    apply_short_video_rule,
    check_int,
    check_probability,
    check_short_video_rule,
    check_video_length,
    clip_span,
    random_start,
    strided_clip,
)

COTRAIN_MODALITIES: tuple[str, ...] = ("residual", "flow", "flow_video")


def cvrl_interval_cdf(fraction: np.ndarray | float, power: float) -> np.ndarray:
    """CDF of CVRL's interval distribution, ``F(x) = ((p + 1) x - x^(p + 1)) / p``.

    Args:
        fraction: interval as a fraction ``x = t / T`` of the largest start offset, in ``[0, 1]``.
        power: ``p > 0``; the density is ``P(x) ∝ 1 - x^p`` (``p = 1``: linear decrease).

    Returns:
        ``F(x)`` with the shape of ``fraction``, ``0`` at ``x = 0`` and ``1`` at ``x = 1``.
    """
    x = np.clip(np.asarray(fraction, dtype=np.float64), 0.0, 1.0)
    return ((power + 1.0) * x - x ** (power + 1.0)) / power


def cvrl_interval_quantile(u: np.ndarray | float, power: float) -> np.ndarray:
    """Inverse of :func:`cvrl_interval_cdf`: the fraction ``x`` with ``F(x) = u``.

    ``p = 1`` has the closed form ``x = 1 - sqrt(1 - u)``; any other ``p`` is solved by
    bisection on ``[0, 1]`` (``F`` is increasing there), 60 halvings, i.e. to float precision.

    Args:
        u: ``(...)`` uniform draws in ``[0, 1]``.
        power: ``p > 0``.

    Returns:
        ``(...)`` fractions in ``[0, 1]``.
    """
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if power == 1.0:
        return 1.0 - np.sqrt(1.0 - u)
    if u.ndim == 0:  # one draw per sampler call: plain floats are ~10x faster than 0-d arrays
        target, lo_s, hi_s = float(u), 0.0, 1.0
        for _ in range(60):
            mid_s = 0.5 * (lo_s + hi_s)
            if ((power + 1.0) * mid_s - mid_s ** (power + 1.0)) / power < target:
                lo_s = mid_s
            else:
                hi_s = mid_s
        return np.asarray(0.5 * (lo_s + hi_s))
    lo, hi = np.zeros_like(u), np.ones_like(u)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = cvrl_interval_cdf(mid, power) < u
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class CVRLIntervalSampler:
    """CVRL's temporally consistent pair (Qian et al., CVPR 2021).

    With ``T = video frames - clip span`` the largest start offset, the interval ``t`` between
    the two starts is drawn from ``P(t) ∝ 1 - (t / T)^p`` on ``[0, T]`` by inverting its CDF
    (:func:`cvrl_interval_quantile`) and rounded to whole frames; then ``start1 ~ U{0..T - t}``,
    ``start2 = start1 + t``, and the two clips are swapped with probability 1/2. Videos shorter
    than one clip span (``T <= 0``) give ``t = 0``: both clips start at frame 0 and are fitted by
    the short-video rule. Paper defaults: 16 frames at stride 2, ``p = 1``.

    Args:
        num_frames: frames per clip.
        stride: step between consecutive clip frames.
        power: ``p > 0`` of the interval density.
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"clip0"``, ``"clip1"``, each ``(num_frames,)``; targets
    ``{"interval": t}`` with ``t = |start(clip1) - start(clip0)|`` in frames.
    """

    num_frames: int = 16
    stride: int = 2
    power: float = 1.0
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_frames", self.num_frames, 1)
        check_int("stride", self.stride, 1)
        if (
            isinstance(self.power, bool)
            or not isinstance(self.power, numbers.Real)
            or not math.isfinite(self.power)
            or self.power <= 0
        ):
            raise ValueError(f"power must be a finite number > 0, got {self.power!r}")
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_frames, self.num_frames)

    @property
    def view_names(self) -> tuple[str, ...]:
        return ("clip0", "clip1")

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one clip pair (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        max_offset = video_frames - clip_span(self.num_frames, self.stride)
        if max_offset > 0:
            fraction = float(cvrl_interval_quantile(rng.random(), float(self.power)))
            interval = min(int(round(fraction * max_offset)), max_offset)
            start1 = int(rng.integers(0, max_offset - interval + 1))
            starts = [start1, start1 + interval]
            if rng.random() < 0.5:
                starts.reverse()
        else:
            interval, starts = 0, [0, 0]
        views = tuple(
            apply_short_video_rule(
                strided_clip(s, self.num_frames, self.stride), video_frames, self.short_video
            )
            for s in starts
        )
        return SampledClips(views=views, names=self.view_names, targets={"interval": interval})


@dataclass(frozen=True)
class TCLRSampler:
    """TCLR's global clip and its non-overlapping local clips (Dave et al., CVIU 2022).

    The global clip has ``num_frames`` frames at ``global_stride``, starting at ``g`` (uniform);
    it covers the ``S = num_frames * global_stride`` frames ``[g, g + S)``. Local clip ``j`` has
    ``local_len`` consecutive frames starting at ``g + j * S / num_local``, i.e. it lies in the
    ``j``-th of ``num_local`` equal parts of the global span (with the defaults: 16 frames at
    stride 4 spanning 64, and 4 local clips of 16 frames starting at ``g + 16 j``). The two
    augmentations per clip are drawn by the transforms, not here. Videos shorter than the span
    get the layout from frame 0, fitted by the short-video rule (no stride is shrunk).

    Args:
        num_frames: frames of the global clip.
        global_stride: step between the global clip's frames.
        num_local: local clips; must divide ``num_frames * global_stride``.
        local_len: frames per local clip; ``None`` means one full part, ``S // num_local``.
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"global"`` ``(num_frames,)`` and ``"local0" ..
    "local{num_local-1}"``, each ``(local_len,)``; no targets.
    """

    num_frames: int = 16
    global_stride: int = 4
    num_local: int = 4
    local_len: int | None = None
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_frames", self.num_frames, 1)
        check_int("global_stride", self.global_stride, 1)
        check_int("num_local", self.num_local, 1)
        if self.global_span % self.num_local:
            raise ValueError(
                f"num_local ({self.num_local}) must divide the global span num_frames * "
                f"global_stride ({self.global_span})"
            )
        if self.local_len is not None:
            check_int("local_len", self.local_len, 1)
        check_short_video_rule(self.short_video)

    @property
    def global_span(self) -> int:
        """Frames covered by the global clip, ``num_frames * global_stride``."""
        return self.num_frames * self.global_stride

    @property
    def local_offset(self) -> int:
        """Frames between consecutive local starts, ``global_span // num_local``."""
        return self.global_span // self.num_local

    @property
    def local_frames(self) -> int:
        """Frames per local clip (``local_len``, or ``local_offset`` when it is ``None``)."""
        return self.local_offset if self.local_len is None else self.local_len

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_frames,) + (self.local_frames,) * self.num_local

    @property
    def view_names(self) -> tuple[str, ...]:
        return ("global",) + tuple(f"local{j}" for j in range(self.num_local))

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one global clip and its local clips (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        span = max(
            clip_span(self.num_frames, self.global_stride),
            (self.num_local - 1) * self.local_offset + self.local_frames,
        )
        start = random_start(rng, video_frames, span)
        layout = [strided_clip(start, self.num_frames, self.global_stride)] + [
            strided_clip(start + j * self.local_offset, self.local_frames, 1)
            for j in range(self.num_local)
        ]
        views = tuple(apply_short_video_rule(v, video_frames, self.short_video) for v in layout)
        return SampledClips(views=views, names=self.view_names)


@dataclass(frozen=True)
class CoTrainingPairSampler:
    """CoCLR's two clips per video (Han et al., NeurIPS 2020).

    Two clips at independent uniform starts; with probability ``same_clip_prob`` the second is
    the first one again (paper: 32 frames, 50%). The second modality is computed downstream;
    ``info["modality"]`` tells which. Residual frames are differences of consecutive sampled
    frames, so ``extra_frame`` (default: ``True`` for ``"residual"``, else ``False``) adds one
    more frame to each clip: ``num_frames + 1`` indices give ``num_frames`` residuals. Set it for
    ``"flow"`` too when flow is computed from the RGB frames and must keep ``num_frames`` steps.

    Args:
        num_frames: frames per clip, before ``extra_frame``.
        stride: step between consecutive clip frames.
        same_clip_prob: probability that both views are the same clip.
        modality: ``"residual"`` (frame differences), ``"flow"`` (flow computed on the fly, e.g.
            RAFT) or ``"flow_video"`` (precomputed flow, e.g. TV-L1 stored as video).
        extra_frame: one more index per clip; ``None`` picks the default above.
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"clip0"``, ``"clip1"``, each ``(num_frames + extra_frame,)``;
    info ``{"modality": modality, "same_clip": bool}``; no targets.
    """

    num_frames: int = 32
    stride: int = 1
    same_clip_prob: float = 0.5
    modality: str = "residual"
    extra_frame: bool | None = None
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_frames", self.num_frames, 1)
        check_int("stride", self.stride, 1)
        check_probability("same_clip_prob", self.same_clip_prob)
        if self.modality not in COTRAIN_MODALITIES:
            raise ValueError(f"modality must be one of {COTRAIN_MODALITIES}, got {self.modality!r}")
        if self.extra_frame is None:
            object.__setattr__(self, "extra_frame", self.modality == "residual")
        elif not isinstance(self.extra_frame, bool):
            raise ValueError(f"extra_frame must be a bool or None, got {self.extra_frame!r}")
        check_short_video_rule(self.short_video)

    @property
    def clip_frames(self) -> int:
        """Indices per view, ``num_frames + 1`` with ``extra_frame``."""
        return self.num_frames + int(bool(self.extra_frame))

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.clip_frames, self.clip_frames)

    @property
    def view_names(self) -> tuple[str, ...]:
        return ("clip0", "clip1")

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one clip pair (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        span = clip_span(self.clip_frames, self.stride)
        same_clip = bool(rng.random() < self.same_clip_prob)
        start0 = random_start(rng, video_frames, span)
        start1 = start0 if same_clip else random_start(rng, video_frames, span)
        views = tuple(
            apply_short_video_rule(
                strided_clip(s, self.clip_frames, self.stride), video_frames, self.short_video
            )
            for s in (start0, start1)
        )
        return SampledClips(
            views=views,
            names=self.view_names,
            info={"modality": self.modality, "same_clip": same_clip},
        )
