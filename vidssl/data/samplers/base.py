"""What every clip sampler returns, and the protocol it follows.

Samplers are pure: they see ``(num_frames, fps, rng)`` and return frame indices. They never open
files, so they are tested without decoding anything, and the same seed gives the same clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SampledClips:
    """One sampling draw for one video.

    Attributes:
        views: one 1-D ``int64`` array of frame indices per view, each inside
            ``[0, num_frames)``. Views of one sampler always have the same lengths, so a batch
            can be stacked view by view.
        names: a name per view (``"clip0"``, ``"global"``, ``"local2"``, ...), same order.
        targets: pretext targets, scalars or small arrays (e.g. ``{"order": 4}``).
        info: non-tensor extras that travel with the sample (e.g. ``{"modality": "residual"}``).
    """

    views: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    targets: Mapping[str, int | float | np.ndarray] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.views) != len(self.names):
            raise ValueError(f"{len(self.views)} views but {len(self.names)} names")
        views = tuple(np.asarray(v, dtype=np.int64).reshape(-1) for v in self.views)
        for v in views:
            v.setflags(write=False)
        object.__setattr__(self, "views", views)

    @property
    def all_indices(self) -> np.ndarray:
        """Every index of every view, concatenated (decode these once, then split)."""
        if len(self.views) == 1:
            return self.views[0]
        return np.concatenate(self.views) if self.views else np.empty(0, np.int64)


@runtime_checkable
class ClipSampler(Protocol):
    """A sampler is a callable with fixed output lengths.

    Attributes:
        view_lengths: frames per view, in view order.
    """

    view_lengths: tuple[int, ...]

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator) -> SampledClips: ...
