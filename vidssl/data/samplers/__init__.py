"""Clip samplers: pure, seeded functions from ``(num_frames, fps, rng)`` to frame indices.

Every sampler is a frozen dataclass built from its parameters, with ``view_lengths`` (fixed,
whatever the video length), ``view_names``, and ``__call__(num_frames, fps, rng) ->
SampledClips``. All share one short-video rule (see :mod:`vidssl.data.samplers.short_video` and
``docs/samplers.md``). Build one by name with :func:`create_sampler`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vidssl.data.samplers.base import ClipSampler, SampledClips
from vidssl.data.samplers.basic import DPCBlockSampler, RandomClipSampler, UniformMultiClipSampler
from vidssl.data.samplers.contrastive import (
    COTRAIN_MODALITIES,
    CoTrainingPairSampler,
    CVRLIntervalSampler,
    TCLRSampler,
    cvrl_interval_cdf,
    cvrl_interval_quantile,
)
from vidssl.data.samplers.distill import GlobalLocalSampler
from vidssl.data.samplers.order import (
    OddOneOutSampler,
    ShuffleLearnSampler,
    VCOPSampler,
    id_from_permutation,
    permutation_from_id,
)
from vidssl.data.samplers.short_video import SHORT_VIDEO_RULES, apply_short_video_rule
from vidssl.errors import ConfigError
from vidssl.registry import Registry

#: Sampler classes by name (:func:`create_sampler`); a plugin adds its own with
#: ``SAMPLERS.register(name, cls)`` (or :func:`register_sampler`).
SAMPLERS: Registry[type] = Registry("sampler")
for _name, _cls in (("random_clip", RandomClipSampler), ("uniform_multi_clip", UniformMultiClipSampler),
                    ("cvrl", CVRLIntervalSampler), ("tclr", TCLRSampler), ("vcop", VCOPSampler),
                    ("shuffle_learn", ShuffleLearnSampler), ("o3n", OddOneOutSampler), ("dpc", DPCBlockSampler),
                    ("cotrain", CoTrainingPairSampler), ("global_local", GlobalLocalSampler)):
    SAMPLERS.register(_name, _cls)


def register_sampler(name: str, cls: type) -> type:
    """Add a sampler class under ``name`` (a plugin's own sampler); returns ``cls``.

    Raises:
        ConfigError: ``name`` is already taken by another class.
    """
    return SAMPLERS.register(name, cls)


def list_samplers() -> list[str]:
    """Registered sampler names, sorted."""
    return SAMPLERS.names()


def create_sampler(name: str, **kwargs: Any) -> ClipSampler:
    """Build the sampler registered as ``name`` with constructor arguments ``kwargs``.

    Raises:
        ConfigError: unknown name, unknown argument, or a value the sampler rejects (one line).
    """
    cls = SAMPLERS[name]
    if dataclasses.is_dataclass(cls):
        allowed = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ConfigError(
                f"sampler {name!r} got unknown argument(s) {', '.join(unknown)}; "
                f"valid: {', '.join(allowed)}"
            )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        message = " ".join(str(err).split())
        raise ConfigError(f"sampler {name!r}: {message}") from err


__all__ = [
    "COTRAIN_MODALITIES",
    "SAMPLERS",
    "SHORT_VIDEO_RULES",
    "ClipSampler",
    "CoTrainingPairSampler",
    "CVRLIntervalSampler",
    "DPCBlockSampler",
    "GlobalLocalSampler",
    "OddOneOutSampler",
    "RandomClipSampler",
    "SampledClips",
    "ShuffleLearnSampler",
    "TCLRSampler",
    "UniformMultiClipSampler",
    "VCOPSampler",
    "apply_short_video_rule",
    "create_sampler",
    "cvrl_interval_cdf",
    "cvrl_interval_quantile",
    "id_from_permutation",
    "list_samplers",
    "permutation_from_id",
    "register_sampler",
]
