"""Multi-view sampling for self-distillation (SVT / LSS): global and local clips of one video.

Every view is an independent strided clip at its own uniform random start, so views differ in
time (where they are and, with different strides, how fast they play) as well as in space (the
crops drawn later by the method's transforms).
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
class GlobalLocalSampler:
    """``num_global`` clips of ``global_frames`` at ``global_stride`` and ``num_local`` clips of
    ``local_frames`` at ``local_stride``, each from its own random start.

    Returns (per call): views ``"global0" .. "global{G-1}"`` then ``"local0" .. "local{L-1}"``;
    no targets. Short videos follow the shared short-video rule per view.
    """

    num_global: int = 2
    global_frames: int = 8
    global_stride: int = 8
    num_local: int = 4
    local_frames: int = 4
    local_stride: int = 4
    short_video: str = "pad"

    def __post_init__(self) -> None:
        check_int("num_global", self.num_global, 1)
        check_int("num_local", self.num_local, 0)
        for name in ("global_frames", "global_stride", "local_frames", "local_stride"):
            check_int(name, getattr(self, name), 1)
        check_short_video_rule(self.short_video)

    @property
    def view_lengths(self) -> tuple[int, ...]:
        return (self.global_frames,) * self.num_global + (self.local_frames,) * self.num_local

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(f"global{i}" for i in range(self.num_global)) + tuple(
            f"local{i}" for i in range(self.num_local))

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips:
        """Draw the views of one video (``fps`` is unused)."""
        video_frames = check_video_length(num_frames)
        layout = [(self.global_frames, self.global_stride)] * self.num_global + \
                 [(self.local_frames, self.local_stride)] * self.num_local
        views = []
        for length, stride in layout:
            start = random_start(rng, video_frames, clip_span(length, stride))
            views.append(apply_short_video_rule(strided_clip(start, length, stride), video_frames,
                                                self.short_video))
        return SampledClips(views=tuple(views), names=self.view_names)
