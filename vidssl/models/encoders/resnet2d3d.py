"""DPC's 2D3D-ResNet (Han et al., ICCVW 2019): 2D first half, 3D second half, 256-d output.

Written from the description in the authors' ``backbone/resnet_2d3d.py`` and
``backbone/select_backbone.py`` (``TengdaHan/DPC``; itself adapted from kenshohara's
3D-ResNets), not copied from it:

- **stem**: a 2D ``1 x 7 x 7`` convolution (64 channels, spatial stride 2, no bias), BatchNorm,
  ReLU, then a ``1 x 3 x 3`` max-pool with spatial stride 2 -- no temporal kernel, no temporal
  stride;
- **stages 1-2** (``layer1``, ``layer2``): basic residual blocks whose two convolutions are
  ``1 x 3 x 3`` (2D); their strided block down-samples space only (shortcut: ``1 x 1 x 1``
  convolution with stride ``(1, 2, 2)`` + BatchNorm);
- **stages 3-4** (``layer3``, ``layer4``): basic blocks with ``3 x 3 x 3`` convolutions; their
  strided block down-samples time too (stride 2 in every axis, shortcut likewise);
- widths 64-128-256-**256**: the authors narrowed the last stage from 512 to 256, so the
  feature is 256-d (``select_backbone.py``'s ``feature_size``);
- ``use_final_relu``: the last block of ``layer4`` ends without its ReLU in the authors' code,
  so the backbone's output is **pre-activation** (DPC scores its predictions against it and
  feeds ``ReLU`` of it to the aggregator; their classifier applies ``ReLU`` before pooling);
- ``track_running_stats``: every BatchNorm's flag. The authors' DPC pretraining sets it
  ``False`` (``dpc/model_3d.py``: batch statistics in train *and* eval mode, no running
  statistics in the released checkpoints); their classifier (``eval/model_3d_lc.py``) and
  vidssl's default set it ``True``.

Parameter names follow the authors' (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``downsample.0/1``), so their checkpoints map by removing a prefix
(:func:`vidssl.models.importers.dpc_state_dict`).

Outputs (``use_final_relu=False``, the default): ``forward_feature_map(x)`` is the backbone's
output as the authors use it, **before** the final ReLU; ``forward_features(x)`` is the mean of
``ReLU(map)`` over ``T', H', W'`` (what their classifier pools), so ``features_are_map_mean`` is
False. ``forward_feature_map(x, pre_activation=False)`` gives the rectified map. With
``use_final_relu=True`` the last block keeps its ReLU, the map is rectified by default and
the pooled feature is its mean; ``pre_activation=True`` still returns the sum before it.

Registered: ``r2d3d_18`` (blocks 2-2-2-2), ``r2d3d_34`` (3-4-6-3), ``r2d3d_tiny`` (widths
16-32-64-64, one block per stage; tests). Shapes: ``H' = ceil(H / 32)``, ``T' = ceil(T / 4)``
(a 5-frame DPC block -> 2 x 4 x 4 at 128 px); ``feature_stride = (4, 32, 32)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, fetch_pretrained, load_state_dict_strict,
                                            no_pretrained_weights, wants_default_weights)

__all__ = ["ResNet2d3dEncoder", "DPC_R18_PREPROCESS", "DPC_R34_PREPROCESS"]

# DPC's input (utils/augmentation.py Normalize: ImageNet mean / std): blocks of 5 frames at
# frame step 3 (eval/test.py's --ds default); the test crop is the centre 224 of a 256-px
# frame scaled to the model's size: crop 128 of a 146-px short side (R18 @ 128), 224 of 256
# (R34 @ 224). (dpc/main.py samples Kinetics blocks at step 5 for pretraining.)
DPC_R18_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=5, stride=3, crop_size=128,
                                resize_size=146)
DPC_R34_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=5, stride=3, crop_size=224,
                                resize_size=256)
TINY_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=16, stride=2, crop_size=64,
                             resize_size=64)
DPC_WIDTHS = (64, 128, 256, 256)
TINY_WIDTHS = (16, 32, 64, 64)


class Block2d3d(nn.Module):
    """Basic residual block: two ``k x 3 x 3`` convolutions with BatchNorm (``k = 3`` for a
    ``temporal`` block, else 1), ReLU between them, identity or projected shortcut, and a final
    ReLU unless ``use_final_relu`` is False. ``pre_activation(x)`` is the sum before it."""

    def __init__(self, inplanes: int, planes: int, stride: int, temporal: bool, track_running_stats: bool,
                 use_final_relu: bool = True):
        super().__init__()
        k, pad = (3, 1) if temporal else (1, 0)
        step = (stride, stride, stride) if temporal else (1, stride, stride)
        self.conv1 = nn.Conv3d(inplanes, planes, (k, 3, 3), stride=step, padding=(pad, 1, 1), bias=False)
        self.bn1 = nn.BatchNorm3d(planes, track_running_stats=track_running_stats)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(planes, planes, (k, 3, 3), padding=(pad, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes, track_running_stats=track_running_stats)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride=step, bias=False),
                                            nn.BatchNorm3d(planes, track_running_stats=track_running_stats))
        self.use_final_relu = use_final_relu

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return out + (x if self.downsample is None else self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pre_activation(x)
        return torch.relu(out) if self.use_final_relu else out


class ResNet2d3dEncoder(nn.Module):
    """DPC's 2D3D-ResNet trunk (see the module docstring).

    Args:
        widths: output channels of the 4 stages (the stem has ``widths[0]``).
        layers: blocks per stage (R18: 2-2-2-2, R34: 3-4-6-3).
        track_running_stats: BatchNorm keeps running statistics (False: DPC's pretraining).
        use_final_relu: the last block ends with its ReLU (False: the authors' DPC).
        preprocess: the input the weights expect.

    Shape:
        - input ``x``: ``(B, 3, T, H, W)`` float, normalised with ``preprocess.mean/std``.
        - ``forward_feature_map``: ``(B, widths[-1], ceil(T/4), ceil(H/32), ceil(W/32))``.
        - ``forward_features`` / ``forward``: ``(B, widths[-1])``, the mean of the rectified map.
    """

    def __init__(self, widths: Sequence[int] = DPC_WIDTHS, layers: Sequence[int] = (2, 2, 2, 2),
                 track_running_stats: bool = True, use_final_relu: bool = False,
                 preprocess: Preprocess = DPC_R18_PREPROCESS):
        super().__init__()
        widths, layers = _check_arch(widths, layers)
        trs = bool(track_running_stats)
        self.conv1 = nn.Conv3d(3, widths[0], (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(widths[0], track_running_stats=trs)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            temporal, stride = i >= 2, (1 if i == 0 else 2)
            stage = [Block2d3d(inplanes if b == 0 else planes, planes, stride if b == 0 else 1, temporal, trs)
                     for b in range(blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            inplanes = planes
        self.layer4[-1].use_final_relu = bool(use_final_relu)
        self.use_final_relu = bool(use_final_relu)
        self.track_running_stats = trs
        self.num_features: int = widths[-1]
        self.preprocess: Preprocess = preprocess
        self.feature_stride: tuple[int, int, int] = (4, 32, 32)
        self.features_are_map_mean = self.use_final_relu   # else: the mean of ReLU(map)
        self.has_pre_activation_map = True
        self._init_weights()

    def _init_weights(self) -> None:
        """As the authors: Kaiming-normal (fan-out) convolutions, BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x: torch.Tensor, pre_activation: bool | None = None) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D, T', H', W')``: the last stage's output, before its
        final ReLU when ``pre_activation`` (default: ``not use_final_relu``, the authors' output)."""
        if pre_activation is None:
            pre_activation = not self.use_final_relu
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        for block in self.layer4[:-1]:
            x = block(x)
        out = self.layer4[-1].pre_activation(x)
        return out if pre_activation else torch.relu(out)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D)``: the mean of the rectified map (the authors'
        classifier applies ReLU to the backbone's output before pooling)."""
        return self.forward_feature_map(x, pre_activation=False).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _check_arch(widths: Sequence[int], layers: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    out = []
    for label, values in (("widths", widths), ("layers", layers)):
        values = tuple(values) if isinstance(values, Sequence) and not isinstance(values, str) else ()
        if len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise ConfigError(f"encoder {label} must be 4 positive integers, got {values!r}")
        out.append(values)
    return out[0], out[1]


def _build(name: str, pretrained: Pretrained, widths: Sequence[int], layers: Sequence[int],
           track_running_stats: bool, use_final_relu: bool, preprocess: Preprocess) -> ResNet2d3dEncoder:
    if name.endswith("_tiny"):
        no_pretrained_weights(name, pretrained)
    elif wants_default_weights(pretrained):
        raise ConfigError(f"encoder {name!r} has no download; DPC's released weights are Google-Drive "
                          f"checkpoints: load them with --pretrained dpc:FILE (vidssl.models.importers)")
    state, source = fetch_pretrained(pretrained, default_url=None, default_what=f"{name} weights")
    model = ResNet2d3dEncoder(widths, layers, track_running_stats, use_final_relu, preprocess)
    model.encoder_name = name
    if state is not None:
        load_state_dict_strict(model, state, source)
    return model


@register_encoder("r2d3d_18")
def r2d3d_18(*, pretrained: Pretrained = None, track_running_stats: bool = True,
             use_final_relu: bool = False) -> ResNet2d3dEncoder:
    """DPC's 2D3D-ResNet-18 (14.1 M parameters, 256-d); DPC's released weights: ``dpc:FILE``."""
    return _build("r2d3d_18", pretrained, DPC_WIDTHS, (2, 2, 2, 2), track_running_stats, use_final_relu,
                  DPC_R18_PREPROCESS)


@register_encoder("r2d3d_34")
def r2d3d_34(*, pretrained: Pretrained = None, track_running_stats: bool = True,
             use_final_relu: bool = False) -> ResNet2d3dEncoder:
    """DPC's 2D3D-ResNet-34 (32.4 M parameters, 3-4-6-3 blocks, 256-d); input as the authors' 224-px model."""
    return _build("r2d3d_34", pretrained, DPC_WIDTHS, (3, 4, 6, 3), track_running_stats, use_final_relu,
                  DPC_R34_PREPROCESS)


@register_encoder("r2d3d_tiny")
def r2d3d_tiny(*, pretrained: Pretrained = None, widths: Sequence[int] = TINY_WIDTHS,
               layers: Sequence[int] = (1, 1, 1, 1), track_running_stats: bool = True,
               use_final_relu: bool = False) -> ResNet2d3dEncoder:
    """The 2D3D-ResNet with small stages (default 16-32-64-64, one block each; 64-d): tests."""
    return _build("r2d3d_tiny", pretrained, widths, layers, track_running_stats, use_final_relu, TINY_PREPROCESS)
