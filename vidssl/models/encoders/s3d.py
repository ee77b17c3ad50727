"""S3D encoders (Xie et al., ECCV 2018) from torchvision's own building blocks.

:class:`S3DEncoder` is the ``features`` trunk of ``torchvision.models.video.S3D`` (separable
stem, 10 ``SepInceptionBlock3D`` s, its max-pools), rebuilt from torchvision's
``TemporalSeparableConv`` / ``SepInceptionBlock3D`` with every channel count multiplied by
``width_mult``. At ``width_mult=1`` the parameter names and shapes are torchvision's, so the
published Kinetics-400 weights load (minus ``classifier.*``); the tests check that and the
output against torchvision's ``S3D.features``.

Registered: ``s3d`` (torchvision size, 1024-d, published weights) and ``s3d_tiny`` (the same
topology at ``width_mult=0.125``, 128-d; tests and CPU demos). The TCLR temporal-dilation option
is not offered for S3D (its temporal down-sampling sits in max-pools, not in a last stage).

``bn_eps`` / ``bn_momentum``: torchvision's S3D uses TensorFlow's BatchNorm (``eps=1e-3``,
``momentum=1e-3``); CoCLR's ``backbone/s3dg.py`` builds the same network with PyTorch's defaults
(``1e-5``, ``0.1``), which its importer sets. ``num_classes``: keep torchvision's classifier
(``AvgPool3d((2, 7, 7), stride 1)`` -> dropout -> ``1x1x1`` convolution -> mean), read by
``forward_logits``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models.video.s3d import SepInceptionBlock3D, TemporalSeparableConv
from torchvision.ops.misc import Conv3dNormActivation

from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD
from vidssl.errors import ConfigError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, fetch_pretrained, load_state_dict_strict,
                                            no_pretrained_weights)

_S3D_URL = "https://download.pytorch.org/models/s3d-d76dad2f.pth"
# torchvision S3D_Weights.KINETICS400_V1: trained on 64-frame clips at 15 fps (~stride 2 at
# 30 fps), resize 256x256, crop 224 (its accuracy is measured on 128-frame clips).
S3D_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=64, stride=2,
                            crop_size=224, resize_size=256)
TINY_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=16, stride=2,
                             crop_size=64, resize_size=64)

# torchvision's S3D trunk: ("conv", out, kernel, stride, padding) for a TemporalSeparableConv,
# ("pool", kernel, stride, padding), ("point", out) for a 1x1x1 Conv3dNormActivation and
# ("inception", b0_out, b1_mid, b1_out, b2_mid, b2_out, b3_out).
_S3D_LAYOUT: tuple[tuple, ...] = (
    ("conv", 64, 7, 2, 3),
    ("pool", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ("point", 64),
    ("conv", 192, 3, 1, 1),
    ("pool", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ("inception", 64, 96, 128, 16, 32, 32),
    ("inception", 128, 128, 192, 32, 96, 64),
    ("pool", (3, 3, 3), (2, 2, 2), (1, 1, 1)),
    ("inception", 192, 96, 208, 16, 48, 64),
    ("inception", 160, 112, 224, 24, 64, 64),
    ("inception", 128, 128, 256, 24, 64, 64),
    ("inception", 112, 144, 288, 32, 64, 64),
    ("inception", 256, 160, 320, 32, 128, 128),
    ("pool", (2, 2, 2), (2, 2, 2), (0, 0, 0)),
    ("inception", 256, 160, 320, 32, 128, 128),
    ("inception", 384, 192, 384, 48, 128, 128),
)


def s3d_trunk(width_mult: float = 1.0, bn_eps: float = 0.001, bn_momentum: float = 0.001
              ) -> tuple[nn.Sequential, int]:
    """torchvision's ``S3D.features`` with channel counts ``max(1, round(c * width_mult))``;
    returns the trunk and its output width (1024 at ``width_mult=1``)."""
    norm = partial(nn.BatchNorm3d, eps=bn_eps, momentum=bn_momentum)  # torchvision's: 1e-3, 1e-3

    def w(c: int) -> int:
        return max(1, round(c * width_mult))

    layers: list[nn.Module] = []
    channels = 3
    for kind, *args in _S3D_LAYOUT:
        if kind == "conv":
            out, kernel, stride, padding = args
            layers.append(TemporalSeparableConv(channels, w(out), kernel, stride, padding, norm))
            channels = w(out)
        elif kind == "pool":
            layers.append(nn.MaxPool3d(kernel_size=args[0], stride=args[1], padding=args[2]))
        elif kind == "point":
            layers.append(Conv3dNormActivation(channels, w(args[0]), kernel_size=1, stride=1,
                                               norm_layer=norm))
            channels = w(args[0])
        else:
            b0, b1m, b1, b2m, b2, b3 = (w(c) for c in args)
            layers.append(SepInceptionBlock3D(channels, b0, b1m, b1, b2m, b2, b3, norm))
            channels = b0 + b1 + b2 + b3
    return nn.Sequential(*layers), channels


class S3DEncoder(nn.Module):
    """S3D trunk + global average pooling.

    Args:
        width_mult: channel multiplier (1.0 = torchvision's S3D).
        preprocess: the input the weights expect.

    Shape:
        - input ``x``: ``(B, 3, T, H, W)`` float, normalised; ``T >= 8`` and ``H, W >= 32``.
        - ``forward_feature_map``: ``(B, D, T', H', W')`` with ``T' ~ T/8`` and
          ``H' ~ H/32`` (exactly ``floor(ceil(T/2)/2)...``: 16x224x224 -> 2x7x7,
          16x64x64 -> 2x2x2); ``D = 1024`` at ``width_mult=1``.
        - ``forward_features`` / ``forward``: ``(B, D)``, the map's mean.
    """

    def __init__(self, width_mult: float = 1.0, preprocess: Preprocess = S3D_PREPROCESS,
                 bn_eps: float = 0.001, bn_momentum: float = 0.001, num_classes: int | None = None):
        super().__init__()
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) \
                or not 0 < width_mult <= 4:
            raise ConfigError(f"S3D width_mult must be a number in (0, 4], got {width_mult!r}")
        if not 0 < bn_eps < 1 or not 0 < bn_momentum <= 1:
            raise ConfigError(f"S3D bn_eps must be in (0, 1) and bn_momentum in (0, 1], got {bn_eps}, {bn_momentum}")
        self.features, self.num_features = s3d_trunk(float(width_mult), float(bn_eps), float(bn_momentum))
        self.preprocess: Preprocess = preprocess
        self.feature_stride: tuple[int, int, int] = (8, 32, 32)
        self.features_are_map_mean = True
        if num_classes is not None:
            self.avgpool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=1)
            self.classifier = nn.Sequential(nn.Dropout(p=0.2),
                                            nn.Conv3d(self.num_features, int(num_classes), kernel_size=1, bias=True))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's ``S3D.forward``: features -> ``AvgPool3d((2, 7, 7), 1)`` -> classifier ->
        mean over the remaining positions (needs a map of at least 2 x 7 x 7: 16 x 224 x 224 in)."""
        if not hasattr(self, "classifier"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 's3d')} has no classifier; build it with num_classes=N")
        return self.classifier(self.avgpool(self.features(x))).mean(dim=(2, 3, 4))

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D, T', H', W')``: the trunk's output (before pooling)."""
        return self.features(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D)``."""
        return self.features(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _build(name: str, pretrained: Pretrained, width_mult: float, preprocess: Preprocess,
           default_url: str | None, bn_eps: float = 0.001, bn_momentum: float = 0.001,
           num_classes: int | None = None) -> S3DEncoder:
    if default_url is None:
        no_pretrained_weights(name, pretrained)
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ConfigError(f"{name}: num_classes must be a positive integer or None, got {num_classes!r}")
    state, source = fetch_pretrained(pretrained, default_url=default_url,
                                     default_what=f"torchvision {name} Kinetics-400 weights")
    model = S3DEncoder(width_mult, preprocess, bn_eps, bn_momentum, num_classes)
    model.encoder_name = name
    if state is not None:
        load_state_dict_strict(model, state, source, ignore_prefixes=() if num_classes else ("classifier.",))
    return model


@register_encoder("s3d")
def s3d(*, pretrained: Pretrained = None, bn_eps: float = 0.001, bn_momentum: float = 0.001,
        num_classes: int | None = None) -> S3DEncoder:
    """S3D (7.9 M parameters, 1024-d); ``pretrained="default"``: torchvision
    ``S3D_Weights.KINETICS400_V1``."""
    return _build("s3d", pretrained, 1.0, S3D_PREPROCESS, _S3D_URL, bn_eps, bn_momentum, num_classes)


@register_encoder("s3d_tiny")
def s3d_tiny(*, pretrained: Pretrained = None, width_mult: float = 0.125) -> S3DEncoder:
    """S3D topology with 1/8 of the channels (128-d): tests and CPU demos; no published weights."""
    return _build("s3d_tiny", pretrained, width_mult, TINY_PREPROCESS, None)
