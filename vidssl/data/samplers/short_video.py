"""The one short-video rule every sampler shares, plus small layout and validation helpers.

The rule, in full (``docs/samplers.md`` says the same for users):

1. A sampler first computes the *span* it needs: the number of frames from the first index it
   lays out to the last one, inclusive.
2. If the video has at least that many frames, the layout is placed at a random (or, for
   evaluation, evenly spaced) start and every index is already inside the video.
3. If the video is shorter, samplers whose layout has *gaps between separate pieces* (the
   interval between VCOP clips, the gaps between Shuffle & Learn frames, the O3N window) first
   shrink those gaps, as far as zero, to fit. The stride *inside* one clip is never changed: it
   is that clip's frame rate, and the encoder was built for it.
4. Whatever still does not fit is laid out from frame 0 and mapped into the video by the
   ``short_video`` option:

   - ``"pad"`` (default): indices past the end are clamped to ``num_frames - 1`` (the last
     frame repeats). Clamping is monotone, so a view that was non-decreasing stays
     non-decreasing, and temporal-order pretexts keep their meaning.
   - ``"loop"``: indices wrap modulo ``num_frames`` (the video plays again from the start).
     Order is *not* preserved across the wrap, so prefer ``"pad"`` for order pretexts.

Samplers never raise on a video of one frame or more; ``num_frames <= 0`` is a ``ValueError``.
"""

from __future__ import annotations

import numbers

import numpy as np

SHORT_VIDEO_RULES: tuple[str, ...] = ("pad", "loop")


def apply_short_video_rule(indices: np.ndarray, num_frames: int, rule: str) -> np.ndarray:
    """Map frame indices laid out from frame 0 into ``[0, num_frames)``.

    Args:
        indices: ``(L,)`` non-negative integer indices, possibly ``>= num_frames``.
        num_frames: frames in the video (``>= 1``).
        rule: ``"pad"`` (clamp to the last frame) or ``"loop"`` (wrap modulo ``num_frames``).

    Returns:
        ``(L,)`` ``int64`` indices inside ``[0, num_frames)``; unchanged where already inside.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if rule == "pad":
        return np.minimum(idx, num_frames - 1)
    if rule == "loop":
        return np.mod(idx, num_frames)
    raise ValueError(f"short_video must be one of {SHORT_VIDEO_RULES}, got {rule!r}")


def check_video_length(num_frames: int) -> int:
    """Return ``num_frames`` as a Python ``int``; ``ValueError`` unless it is an integer >= 1."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral):
        raise ValueError(
            f"num_frames (frames in the video) must be an integer, got {num_frames!r}"
        )
    if num_frames <= 0:
        raise ValueError(f"num_frames (frames in the video) must be >= 1, got {num_frames}")
    return int(num_frames)


def check_short_video_rule(rule: str) -> None:
    """``ValueError`` unless ``rule`` is one of :data:`SHORT_VIDEO_RULES`."""
    if rule not in SHORT_VIDEO_RULES:
        raise ValueError(f"short_video must be one of {SHORT_VIDEO_RULES}, got {rule!r}")


def check_int(name: str, value: int, minimum: int) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) and ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_probability(name: str, value: float) -> None:
    """``ValueError`` unless ``value`` is a real number in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def clip_span(length: int, stride: int) -> int:
    """Frames covered by ``length`` indices at ``stride``, first to last inclusive."""
    return (length - 1) * stride + 1


def strided_clip(start: int, length: int, stride: int) -> np.ndarray:
    """``(length,)`` ``int64`` indices ``start, start + stride, ...``, not yet fitted to a video."""
    return start + stride * np.arange(length, dtype=np.int64)


def random_start(rng: np.random.Generator, num_frames: int, span: int) -> int:
    """A uniform start in ``[0, num_frames - span]``, or 0 when the span does not fit."""
    max_start = num_frames - span
    return int(rng.integers(0, max_start + 1)) if max_start > 0 else 0
