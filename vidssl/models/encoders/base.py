"""The contract every vidssl video encoder keeps (no base class: a protocol plus metadata).

An encoder is an ``nn.Module`` with:

- ``num_features: int`` -- width ``D`` of the pooled feature;
- ``preprocess: Preprocess`` -- what the input must look like (travels with the weights);
- ``forward_features(x)`` -- ``(B, C, T, H, W)`` float, normalised -> ``(B, D)`` pooled;
- ``forward_feature_map(x)`` -- ``(B, C, T, H, W)`` -> ``(B, D, T', H', W')``, the last
  spatio-temporal map before pooling (DPC, TCLR's global-local loss, tracking adapters);
- ``forward(x)`` -- same as ``forward_features``.

Optional: ``has_pre_activation_map = True`` and ``forward_feature_map(x, pre_activation=True)``,
the last block's residual sum before its final ReLU (R3D family, DPC's 2D3D-ResNet, R3D-50;
DPC scores against it); ``features_are_map_mean = False`` where the pooled feature is not the
map's mean (DPC's 2D3D-ResNet: the map is pre-activation, the pooled feature the mean of its ReLU).

Encoders built by :func:`vidssl.models.encoders.create_encoder` also carry ``encoder_name`` (the
registered name), ``feature_stride`` (``(t, h, w)`` input frames / pixels per feature-map cell,
e.g. ``(8, 16, 16)`` for R3D-18) and a spec for :func:`~vidssl.models.encoders.encoder_spec`;
these are not part of the protocol, so test doubles need not define them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD


@dataclass(frozen=True)
class Preprocess:
    """Input expectations of an encoder (what its weights were trained with).

    Attributes:
        mean, std: per-channel normalisation of ``[0, 1]`` RGB.
        num_frames: clip length ``T``; ``stride``: frame step between clip frames.
        crop_size: spatial side fed to the model; ``resize_size``: short side before the crop.
    """

    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    num_frames: int = 16
    stride: int = 2
    crop_size: int = 112
    resize_size: int = 128


@runtime_checkable
class VideoEncoder(Protocol):
    num_features: int
    preprocess: Preprocess

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor: ...
