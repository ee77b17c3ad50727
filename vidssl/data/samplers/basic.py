"""Single-sequence samplers: a random clip, evenly spaced evaluation clips, DPC block sequences.

Each of these lays out strided clips; a clip's stride is its frame rate and is never changed.
A video shorter than a clip's span gets the clip laid out from frame 0 and fitted by the shared
short-video rule (:mod:`vidssl.data.samplers.short_video`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidssl.data.samplers.base import SampledClips
from vidssl.data.samplers.short_video import (
    apply_short_video_rule,
    check_int,
    check_short_video_rule,
    check_video_length,
    clip_span,
    random_start,
    strided_clip,
)


@dataclass(frozen=True)
class RandomClipSampler:
    """One clip of ``num_frames`` indices at ``stride`` from a uniform random start.

    Args:
        num_frames: frames per clip (the clip length, not the video length).
        stride: step between consecutive clip frames (``1`` = every frame).
        short_video: ``"pad"`` or ``"loop"``, see :mod:`vidssl.data.samplers.short_video`.

    Returns (per call): one view ``"clip"`` of shape ``(num_frames,)``; no targets.
    """

    num_frames: int = 16
    stride: int = 1
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_frames", self.num_frames, 1)
        check_int("stride", self.stride, 1)
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_frames,)

    @property
    def view_names(self) -> tuple[str, ...]:
        return ("clip",)

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one clip from a video of ``num_frames`` frames (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        span = clip_span(self.num_frames, self.stride)
        start = random_start(rng, video_frames, span)
        clip = strided_clip(start, self.num_frames, self.stride)
        clip = apply_short_video_rule(clip, video_frames, self.short_video)
        return SampledClips(views=(clip,), names=self.view_names)


@dataclass(frozen=True)
class UniformMultiClipSampler:
    """``num_clips`` evenly spaced clips covering the video, for evaluation (deterministic).

    Clip ``k`` starts at ``round(k * M / (K - 1))`` with ``M = video frames - clip span`` (the
    first clip at frame 0, the last one ending on the last frame); a single clip (``K = 1``) is
    centred at ``M // 2``. The rng is not used. When the video is shorter than one clip, every
    clip starts at frame 0 (so all clips are equal) and is fitted by the short-video rule.

    Args:
        num_frames: frames per clip.
        stride: step between consecutive clip frames.
        num_clips: clips per video (``K``; 10 in the common multi-clip protocol).
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): views ``"clip0" .. "clip{K-1}"``, each ``(num_frames,)``, in temporal
    order; no targets.
    """

    num_frames: int = 16
    stride: int = 1
    num_clips: int = 10
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_frames", self.num_frames, 1)
        check_int("stride", self.stride, 1)
        check_int("num_clips", self.num_clips, 1)
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_frames,) * self.num_clips

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(f"clip{k}" for k in range(self.num_clips))

    def clip_starts(self, num_frames: int) -> np.ndarray:
        """``(num_clips,)`` ``int64`` start frames for a video of ``num_frames`` frames."""
        video_frames = check_video_length(num_frames)
        max_start = max(video_frames - clip_span(self.num_frames, self.stride), 0)
        if self.num_clips == 1:
            return np.array([max_start // 2], dtype=np.int64)
        return np.rint(np.linspace(0, max_start, self.num_clips)).astype(np.int64)

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Lay out the evaluation clips (``fps`` and ``rng`` are unused)."""
        video_frames = check_video_length(num_frames)
        views = tuple(
            apply_short_video_rule(
                strided_clip(int(start), self.num_frames, self.stride), video_frames,
                self.short_video,
            )
            for start in self.clip_starts(video_frames)
        )
        return SampledClips(views=views, names=self.view_names)


@dataclass(frozen=True)
class DPCBlockSampler:
    """DPC's sequence of contiguous blocks (Han et al., ICCVW 2019).

    ``num_blocks * block_len`` frames at ``frame_step`` from a uniform start, returned as one
    flat view; the method reshapes it to ``(num_blocks, block_len)`` (block ``i`` is
    ``view[i * block_len:(i + 1) * block_len]``). Paper defaults: 8 blocks of 5 frames, step 3
    (span 118 frames). The frame step is never shrunk for short videos: the sequence is laid out
    from frame 0 and fitted by the short-video rule (``"pad"`` repeats the last frame, so late
    blocks become static).

    Args:
        num_blocks: blocks per sequence (``N``; 5 are aggregated and 3 predicted in the paper).
        block_len: frames per block.
        frame_step: step between consecutive frames, inside and across blocks.
        short_video: ``"pad"`` or ``"loop"``.

    Returns (per call): one view ``"blocks"`` of shape ``(num_blocks * block_len,)``; no targets.
    """

    num_blocks: int = 8
    block_len: int = 5
    frame_step: int = 3
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_blocks", self.num_blocks, 1)
        check_int("block_len", self.block_len, 1)
        check_int("frame_step", self.frame_step, 1)
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_blocks * self.block_len,)

    @property
    def view_names(self) -> tuple[str, ...]:
        return ("blocks",)

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw one block sequence (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        length = self.num_blocks * self.block_len
        start = random_start(rng, video_frames, clip_span(length, self.frame_step))
        seq = strided_clip(start, length, self.frame_step)
        seq = apply_short_video_rule(seq, video_frames, self.short_video)
        return SampledClips(views=(seq,), names=self.view_names)
