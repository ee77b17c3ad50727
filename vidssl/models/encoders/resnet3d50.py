"""CVRL's 3D-ResNet-50 (Qian et al., CVPR 2021), built with pytorchvideo's ``create_resnet``.

The architecture is the one CVRL's released configuration asks of TensorFlow Model Garden's
``ResNet3D`` (``official/projects/video_ssl/configs/experiments/cvrl_pretrain_k600_200ep.yaml``
with ``official/vision/modeling/backbones/resnet_3d.py`` and ``layers/nn_blocks_3d.py``):

- stem: a ``5 x 7 x 7`` convolution with stride ``(2, 2, 2)`` (64 channels), BatchNorm, ReLU,
  then a ``1 x 3 x 3`` max-pool with stride ``(1, 2, 2)`` -- the stem's is the **only temporal
  down-sampling** (``T' = T / 2``);
- 3-4-6-3 bottleneck blocks (64-128-256-512 inner channels, x 4 out, 2048-d): the first ``1 x 1``
  convolution of each block carries the temporal kernel, **1 in res2 and res3 and 3 in res4 and
  res5** (SlowOnly-like), the ``1 x 3 x 3`` one the spatial stride (2 in the first block of res3,
  res4, res5); projection shortcut where the channel count changes.

pytorchvideo's ``create_resnet`` builds exactly that block layout (``conv_a`` temporal, ``conv_b``
spatial, ``conv_c`` expansion) when given the stem's kernel and stride, so vidssl wraps it
(``head=None``) rather than writing its own. Every BatchNorm weight starts at 1 as in
TensorFlow (pytorchvideo zero-initialises each block's last one). Differences from the
TensorFlow model, none of them in the parameters: PyTorch BatchNorm defaults (``eps 1e-5``,
momentum 0.1; TensorFlow: ``1e-3`` / 0.99, i.e. PyTorch momentum 0.01), pytorchvideo's
Kaiming (fan-out) convolution init where TensorFlow's is variance scaling (fan-in), and
symmetric padding where TensorFlow's ``'same'`` pads a stride-2 convolution asymmetrically
(same output sizes). CVRL's released checkpoints are TensorFlow files; no importer reads them.

Registered: ``r3d_50`` (2048-d, 31.7 M parameters) and ``r3d_50_tiny`` (the same topology with an
8-channel stem, 256-d; tests). ``feature_stride = (2, 32, 32)``: 16 x 224² -> 2048 x 8 x 7 x 7.
Needs the ``pytorchvideo`` package (``pip install 'vidssl[bench]'`` or ``pip install
pytorchvideo``); without it these encoders raise :class:`~vidssl.errors.MissingDependencyError`.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD
from vidssl.errors import ConfigError, MissingDependencyError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, fetch_pretrained, load_state_dict_strict,
                                            no_pretrained_weights, wants_default_weights)

__all__ = ["R3D50Encoder", "CVRL_PREPROCESS"]

# CVRL: 16 frames at stride 2, 224 px (the pretraining config's feature_shape / temporal_stride;
# cvrl_linear_eval_k600.yaml trains its probe on 32 x 2 at 224 and tests 256-px crops).
CVRL_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=16, stride=2, crop_size=224,
                             resize_size=256)
TINY_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=16, stride=2, crop_size=64,
                             resize_size=64)
# Temporal kernel of each stage's first 1x1 convolution (CVRL's block_specs: 1,1,3,3).
CVRL_TEMPORAL_KERNELS = ((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1))


def _create_resnet():
    try:
        with warnings.catch_warnings():      # pytorchvideo 0.1.5 uses torch.jit.script at import
            warnings.simplefilter("ignore")
            from pytorchvideo.models.resnet import create_resnet
    except ImportError:
        raise MissingDependencyError(package="pytorchvideo", extra="bench", feature="the r3d_50 encoders") from None
    return create_resnet


class R3D50Encoder(nn.Module):
    """CVRL's R3D-50 trunk (pytorchvideo ``Net`` without head) under the vidssl contract.

    Args:
        stem_width: the stem's channels (64; the stages' inner widths are 1, 2, 4, 8 times it and
            their outputs 4 times that: 2048-d at 64).
        preprocess: the input the weights expect.

    Shape:
        - input ``x``: ``(B, 3, T, H, W)``, normalised.
        - ``forward_feature_map``: ``(B, 32 stem_width, ceil(T/2), ceil(H/32), ceil(W/32))``.
        - ``forward_features``: ``(B, 32 stem_width)``, the map's mean.
    """

    def __init__(self, stem_width: int = 64, preprocess: Preprocess = CVRL_PREPROCESS):
        super().__init__()
        if not isinstance(stem_width, int) or isinstance(stem_width, bool) or stem_width < 1:
            raise ConfigError(f"stem_width must be a positive integer, got {stem_width!r}")
        create_resnet = _create_resnet()
        self.net = create_resnet(model_depth=50, stem_dim_out=stem_width, stem_conv_kernel_size=(5, 7, 7),
                                 stem_conv_stride=(2, 2, 2), stem_pool_kernel_size=(1, 3, 3),
                                 stem_pool_stride=(1, 2, 2), stage_conv_a_kernel_size=CVRL_TEMPORAL_KERNELS,
                                 stage_temporal_stride=(1, 1, 1, 1), stage_spatial_h_stride=(1, 2, 2, 2),
                                 stage_spatial_w_stride=(1, 2, 2, 2), head=None)
        for m in self.net.modules():     # TensorFlow's BatchNorm init (gamma 1): pytorchvideo zeroes each
            if isinstance(m, nn.BatchNorm3d):   # block's last gamma; CVRL's ResNet3D does not
                nn.init.ones_(m.weight)
        self.num_features: int = 32 * stem_width
        self.preprocess: Preprocess = preprocess
        self.feature_stride: tuple[int, int, int] = (2, 32, 32)
        self.features_are_map_mean = True
        self.has_pre_activation_map = True

    def forward_feature_map(self, x: torch.Tensor, pre_activation: bool = False) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D, T', H', W')``: res5's output (before the last block's
        ReLU with ``pre_activation``)."""
        blocks = self.net.blocks
        for block in blocks[:-1]:
            x = block(x)
        res_blocks = blocks[-1].res_blocks
        for block in res_blocks[:-1]:
            x = block(x)
        last = res_blocks[-1]
        shortcut = x if last.branch1_conv is None else last.branch1_norm(last.branch1_conv(x))
        out = last.branch_fusion(shortcut, last.branch2(x))
        return out if pre_activation else last.activation(out)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _build(name: str, pretrained: Pretrained, stem_width: int, preprocess: Preprocess) -> R3D50Encoder:
    if name.endswith("_tiny"):
        no_pretrained_weights(name, pretrained)
    elif wants_default_weights(pretrained):
        raise ConfigError(f"encoder {name!r} has no published PyTorch weights (CVRL released TensorFlow "
                          f"checkpoints); use pretrained=None or a state dict vidssl saved")
    state, source = fetch_pretrained(pretrained, default_url=None, default_what=f"{name} weights")
    model = R3D50Encoder(stem_width, preprocess)
    model.encoder_name = name
    if state is not None:
        load_state_dict_strict(model, state, source)
    return model


@register_encoder("r3d_50")
def r3d_50(*, pretrained: Pretrained = None) -> R3D50Encoder:
    """CVRL's 3D-ResNet-50 (2048-d; temporal kernels in res4 / res5 only, stem stride 2 in time)."""
    return _build("r3d_50", pretrained, 64, CVRL_PREPROCESS)


@register_encoder("r3d_50_tiny")
def r3d_50_tiny(*, pretrained: Pretrained = None, stem_width: int = 8) -> R3D50Encoder:
    """CVRL's R3D-50 topology with an 8-channel stem (256-d): tests."""
    return _build("r3d_50_tiny", pretrained, stem_width, TINY_PREPROCESS)
