"""Test views of a video: which clips (temporal layout) and which crops (spatial layout).

Evaluation protocols differ in how they cut a test video into views, and the differences move
numbers by points, so each layout here is named after where it comes from:

temporal (``layout``)
    ``uniform``  ``K`` evenly spaced clips, the first at frame 0 and the last ending on the last
                 frame (:class:`~vidssl.data.samplers.UniformMultiClipSampler`; SlowFast /
                 VideoMAE-style multi-clip testing, CVRL's ``sample_linspace_sequence``).
    ``tclr``     ``K`` clips starting at ``int(linspace(0, N - span - 10, K))`` (a start below 0
                 becomes the clip number): TCLR's ``multi_baseline_dataloader_val_strong``
                 (``linear_eval/dl_linear.py``) and ``nn_retrieval/dl_ret.py``.
    ``sliding``  every window of ``clip_len`` frames whose start advances by ``window_step``
                 frames (CoCLR's test windows, ``dataset/lmdb_dataset.py``: step
                 ``32 * ds // 2 - 1 = 15``); the number of clips depends on the video length
                 (at least one), capped at ``max_clips`` evenly chosen windows.

spatial (``num_crops``)
    ``1``   the centre crop;
    ``3``   start, centre and end of the long side, centred on the short side (SlowFast,
            VideoMAE, V-JEPA, CVRL's 3-crop test);
    ``5``   the four corners and the centre (CoCLR's ``--five_crop``, torchvision ``FiveCrop``);
    ``10``  the five crops and their horizontal flips (CoCLR's ``--ten_crop``).

Every layout resizes the short side to ``resize_size`` first, then crops ``size`` squares:
CoCLR's "centre-crop 224 of the 240-pixel frame, then scale to 128" is ``resize_size = 137``,
``size = 128`` (the same region, resized before instead of after cropping).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vidssl.data.samplers import UniformMultiClipSampler
from vidssl.data.samplers.base import SampledClips
from vidssl.data.samplers.short_video import (apply_short_video_rule, check_int, check_video_length,
                                              clip_span, strided_clip)
from vidssl.errors import ConfigError

LAYOUTS = ("uniform", "tclr", "sliding")
CROP_COUNTS = (1, 3, 5, 10)

__all__ = ["LAYOUTS", "CROP_COUNTS", "ViewSpec", "TCLRClipSampler", "SlidingWindowSampler", "view_sampler"]


@dataclass(frozen=True)
class TCLRClipSampler:
    """TCLR's test clips: clip ``k`` of ``K`` starts at ``int(linspace(0, N - span - margin, K)[k])``
    (``span = num_frames * stride``, ``margin = 10``); a negative start becomes ``k`` (as
    released). Frames past the end are fitted by the short-video rule."""

    num_frames: int = 16
    stride: int = 2
    num_clips: int = 10
    margin: int = 10
    short_video: str = "pad"

    def __post_init__(self) -> None:
        for name in ("num_frames", "stride", "num_clips"):
            check_int(name, getattr(self, name), 1)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.num_frames,) * self.num_clips

    def clip_starts(self, num_frames: int) -> np.ndarray:
        n = check_video_length(num_frames)
        last = n - self.num_frames * self.stride - self.margin
        starts = np.linspace(0, last, self.num_clips).astype(np.int64)   # int() truncates toward 0
        return np.where(starts < 0, np.arange(self.num_clips), starts)

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        n = check_video_length(num_frames)
        views = tuple(apply_short_video_rule(strided_clip(int(s), self.num_frames, self.stride), n,
                                             self.short_video) for s in self.clip_starts(n))
        return SampledClips(views=views, names=tuple(f"clip{k}" for k in range(self.num_clips)))


@dataclass(frozen=True)
class SlidingWindowSampler:
    """Every window of ``num_frames`` frames at ``stride`` whose start advances by ``step``
    (the last window ends at or before the last frame); at least one window; more than
    ``max_clips`` windows are thinned to ``max_clips`` evenly spaced ones."""

    num_frames: int = 32
    stride: int = 1
    step: int = 15
    max_clips: int = 64
    short_video: str = "pad"

    def __post_init__(self) -> None:
        for name in ("num_frames", "stride", "step", "max_clips"):
            check_int(name, getattr(self, name), 1)

    @property
    def num_clips(self) -> int | None:      # variable: depends on the video
        return None

    def clip_starts(self, num_frames: int) -> np.ndarray:
        n = check_video_length(num_frames)
        span = clip_span(self.num_frames, self.stride)
        starts = np.arange(0, max(n - span, 0) + 1, self.step, dtype=np.int64)
        if len(starts) > self.max_clips:
            starts = starts[np.rint(np.linspace(0, len(starts) - 1, self.max_clips)).astype(np.int64)]
        return starts

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        n = check_video_length(num_frames)
        starts = self.clip_starts(n)
        views = tuple(apply_short_video_rule(strided_clip(int(s), self.num_frames, self.stride), n,
                                             self.short_video) for s in starts)
        return SampledClips(views=views, names=tuple(f"clip{k}" for k in range(len(starts))))


@dataclass(frozen=True)
class ViewSpec:
    """The views of one test video: ``num_clips`` clips of ``clip_len`` frames at ``stride`` laid
    out by ``layout`` (``window_step`` for ``sliding``), each cut into ``num_crops`` squares of
    ``size`` after resizing the short side to ``resize_size``."""

    clip_len: int
    stride: int
    size: int
    resize_size: int
    num_clips: int = 10
    num_crops: int = 1
    layout: str = "uniform"
    window_step: int = 15
    max_clips: int = 64

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"view layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.num_crops not in CROP_COUNTS:
            raise ConfigError(f"num_crops must be one of {CROP_COUNTS}, got {self.num_crops}")
        for name in ("clip_len", "stride", "size", "num_clips", "window_step", "max_clips"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"view {name} must be >= 1, got {getattr(self, name)}")
        if self.resize_size < self.size:
            raise ConfigError(f"resize_size {self.resize_size} is smaller than the crop size {self.size}")

    @property
    def fixed_clips(self) -> bool:
        """Whether every video gets the same number of clips (all layouts but ``sliding``)."""
        return self.layout != "sliding"

    def views_per_video(self) -> int | None:
        return self.num_clips * self.num_crops if self.fixed_clips else None

    def describe(self) -> str:
        crops = {1: "centre crop", 3: "3 crops along the long side", 5: "5 crops (corners + centre)",
                 10: "10 crops (5 + flips)"}[self.num_crops]
        clips = {"uniform": f"{self.num_clips} evenly spaced clips",
                 "tclr": f"{self.num_clips} clips at TCLR's linspace starts",
                 "sliding": f"sliding windows every {self.window_step} frames (<= {self.max_clips})"}[self.layout]
        return (f"{clips} of {self.clip_len} frames (stride {self.stride}) x {crops} of {self.size} px "
                f"(short side {self.resize_size})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def view_sampler(spec: ViewSpec):
    """The clip sampler of ``spec``'s temporal layout."""
    if spec.layout == "uniform":
        return UniformMultiClipSampler(spec.clip_len, spec.stride, spec.num_clips)
    if spec.layout == "tclr":
        return TCLRClipSampler(spec.clip_len, spec.stride, spec.num_clips)
    return SlidingWindowSampler(spec.clip_len, spec.stride, spec.window_step, spec.max_clips)
