"""R3D, MC3 and R(2+1)D encoders (Tran et al., CVPR 2018) from torchvision's own building blocks.

:class:`VideoResNetEncoder` is torchvision's ``VideoResNet`` without its pooling and classifier,
assembled from ``torchvision.models.video.resnet``'s ``BasicBlock``, ``Conv3DSimple`` and
``Conv2Plus1D`` with configurable stage ``widths`` and ``layers``. At the default widths its
parameter names and shapes are torchvision's, so the published Kinetics-400 weights load into it
(minus ``fc.*``); ``tests/models/test_encoders.py`` checks that, and that the outputs equal
torchvision's ``layer4`` output.

Registered: ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (torchvision sizes, published weights),
``r3d_tiny``, ``mc3_tiny``, ``r2plus1d_tiny`` (widths 16-32-64-128, one block per stage: tests and
the CPU demo). MC3 ("mixed convolutions") is R3D's first stage followed by 2D (``1 x 3 x 3``)
stages, so its only temporal down-sampling is none at all: ``T' = T``.

``num_classes``: keep torchvision's classifier ``fc`` (``Linear(512, num_classes)`` on the pooled
feature); ``forward_logits(x)`` then gives its logits, and ``pretrained="default"`` with
``num_classes=400`` loads the Kinetics-400 head too (``class_names``: torchvision's categories).

``forward_feature_map(x, pre_activation=True)``: the last block's residual sum before its final
ReLU (``ReLU`` of it is the default map), the pre-activation output DPC scores against.

TCLR option ``temporal_dilation_last_stage=True``: the temporal stride 2 of the last stage is
replaced by temporal dilation 2 in the first block's strided convolution (no new parameters,
as in TCLR's ``build_r3d_backbone``), so a 16-frame clip keeps 4 temporal slices at the output.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DNoTemporal, Conv3DSimple

from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD
from vidssl.errors import ConfigError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, fetch_pretrained, load_state_dict_strict,
                                            no_pretrained_weights)

_CONV_BUILDERS = {"3d": Conv3DSimple, "2plus1d": Conv2Plus1D, "mixed": Conv3DNoTemporal}

# torchvision's published Kinetics-400 weights (R3D_18_Weights / MC3_18_Weights /
# R2Plus1D_18_Weights .KINETICS400_V1): 16-frame clips at 15 fps (~stride 2 at 30 fps),
# resize 128x171, crop 112.
_WEIGHT_URLS = {
    "r3d_18": "https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
    "mc3_18": "https://download.pytorch.org/models/mc3_18-a90a0ba3.pth",
    "r2plus1d_18": "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth",
}
KINETICS_R3D_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=16,
                                     stride=2, crop_size=112, resize_size=128)
# Tiny variants: sized for the embedded synthetic dataset (64x64 frames).
TINY_PREPROCESS = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=16, stride=2,
                             crop_size=64, resize_size=64)
TINY_WIDTHS = (16, 32, 64, 128)
TINY_LAYERS = (1, 1, 1, 1)
#: What the trunk sees: the frames, or the differences of consecutive frames.
INPUT_MODES: tuple[str, ...] = ("rgb", "differences")


def _stem(conv: str, width: int) -> nn.Sequential:
    """torchvision's ``BasicStem`` / ``R2Plus1dStem`` with ``width`` output channels (spatial
    stride 2, no temporal stride). The (2+1)D stem's 45 middle channels scale with ``width``."""
    if conv in ("3d", "mixed"):
        return nn.Sequential(
            nn.Conv3d(3, width, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3),
                      bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    mid = 45 if width == 64 else max(1, round(45 * width / 64))
    return nn.Sequential(
        nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0),
                  bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def _stage(conv: str, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` torchvision ``BasicBlock`` s; the first one strides (as ``VideoResNet``)."""
    builder = _CONV_BUILDERS[conv]
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv3d(inplanes, planes, kernel_size=1,
                      stride=builder.get_downsample_stride(stride), bias=False),
            nn.BatchNorm3d(planes))
    layers = [BasicBlock(inplanes, planes, builder, stride, downsample)]
    layers += [BasicBlock(planes, planes, builder) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def dilate_temporal_stride(stage: nn.Sequential) -> None:
    """TCLR: in ``stage``'s first block, every convolution with temporal stride 2 gets temporal
    stride 1; those with a temporal kernel > 1 get temporal dilation 2 (and matching padding)
    instead, keeping their receptive field. Parameters are unchanged, so weights still load."""
    block = stage[0]
    convs = list(block.conv1.modules())
    if block.downsample is not None:
        convs += list(block.downsample.modules())
    for module in convs:
        if isinstance(module, nn.Conv3d) and module.stride[0] == 2:
            k = module.kernel_size[0]
            module.stride = (1, *module.stride[1:])
            if k > 1:
                module.dilation = (2, *module.dilation[1:])
                module.padding = (k - 1, *module.padding[1:])


class VideoResNetEncoder(nn.Module):
    """R3D / R(2+1)D trunk: stem + 4 stages of ``BasicBlock`` s, global average pooling.

    Args:
        conv: ``"3d"`` (R3D, ``Conv3DSimple``) or ``"2plus1d"`` (R(2+1)D, ``Conv2Plus1D``).
        widths: output channels of the 4 stages (the stem has ``widths[0]``).
        layers: blocks per stage.
        temporal_dilation_last_stage: TCLR's dilated last stage (see the module docstring).
        preprocess: the input the weights expect.
        input_mode: ``"rgb"`` (the frames) or ``"differences"``: the trunk sees the ``T - 1``
            differences of consecutive (normalised) frames, computed inside the encoder so every
            caller still passes RGB clips (O3N's *stack of differences* encoding, Fernando et
            al. 2017; TSN's RGB difference). Needs ``T >= 2``.

    Shape:
        - input ``x``: ``(B, 3, T, H, W)`` float, normalised with ``preprocess.mean/std``.
        - ``forward_feature_map``: ``(B, widths[-1], T', H', W')`` with ``H' = ceil(H/16)``,
          ``W' = ceil(W/16)``, ``T' = ceil(T/8)`` (``ceil(T/4)`` with the TCLR dilation), e.g.
          16x112x112 -> 2x7x7 (4x7x7 dilated); ``feature_stride`` holds ``(8 or 4, 16, 16)``.
        - ``forward_features`` / ``forward``: ``(B, widths[-1])``, the map's mean over T', H', W'.
    """

    def __init__(self, conv: str, widths: Sequence[int] = (64, 128, 256, 512),
                 layers: Sequence[int] = (2, 2, 2, 2), temporal_dilation_last_stage: bool = False,
                 preprocess: Preprocess = KINETICS_R3D_PREPROCESS, num_classes: int | None = None,
                 input_mode: str = "rgb"):
        super().__init__()
        widths, layers = _check_arch(conv, widths, layers)
        if input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")
        self.input_mode = input_mode
        self.stem = _stem(conv, widths[0])
        inplanes = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stage_conv = "3d" if conv == "mixed" and i == 0 else conv
            self.add_module(f"layer{i + 1}", _stage(stage_conv, inplanes, planes, blocks, stride))
            inplanes = planes
        if temporal_dilation_last_stage:
            dilate_temporal_stride(self.layer4)
        self.num_features: int = widths[-1]
        self.preprocess: Preprocess = preprocess
        t_stride = 1 if conv == "mixed" else (4 if temporal_dilation_last_stage else 8)
        self.feature_stride: tuple[int, int, int] = (t_stride, 16, 16)
        self.features_are_map_mean = True
        self.has_pre_activation_map = True
        if num_classes is not None:
            self.fc = nn.Linear(widths[-1], int(num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision ``VideoResNet``'s initialisation (Kaiming fan-out convs, unit BN)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x: torch.Tensor, pre_activation: bool = False) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D, T', H', W')``: the last stage's output; with
        ``pre_activation``, the last block's residual sum before its final ReLU (DPC's targets)."""
        if self.input_mode == "differences":
            if x.ndim != 5 or x.shape[2] < 2:
                raise ValueError(f"input_mode 'differences' needs (B, C, T >= 2, H, W) clips, got {tuple(x.shape)}")
            x = x[:, :, 1:] - x[:, :, :-1]
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        if not pre_activation:
            return self.layer4(x)
        for block in self.layer4[:-1]:
            x = block(x)
        last = self.layer4[-1]               # torchvision BasicBlock: relu(conv2(conv1(x)) + shortcut(x))
        shortcut = x if last.downsample is None else last.downsample(x)
        return last.conv2(last.conv1(x)) + shortcut

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D)``: global average of the feature map."""
        return self.forward_feature_map(x).mean(dim=(2, 3, 4))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, num_classes)``: torchvision's ``fc`` on the pooled feature
        (only when built with ``num_classes``)."""
        if not hasattr(self, "fc"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 'this encoder')} has no classifier; "
                              f"build it with num_classes=N")
        return self.fc(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _check_arch(conv: str, widths: Sequence[int], layers: Sequence[int]
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if conv not in _CONV_BUILDERS:
        raise ConfigError(f"conv must be one of {sorted(_CONV_BUILDERS)}, not {conv!r}")
    out = []
    for label, values in (("widths", widths), ("layers", layers)):
        values = tuple(values) if isinstance(values, Sequence) and not isinstance(values, str) \
            else ()
        if len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                       for v in values):
            raise ConfigError(f"encoder {label} must be 4 positive integers, got {values!r}")
        out.append(values)
    return out[0], out[1]


def _check_classes(name: str, num_classes: int | None) -> None:
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ConfigError(f"{name}: num_classes must be a positive integer or None, got {num_classes!r}")


def _build(name: str, conv: str, pretrained: Pretrained, widths: Sequence[int],
           layers: Sequence[int], temporal_dilation_last_stage: bool,
           preprocess: Preprocess, num_classes: int | None = None, input_mode: str = "rgb"
           ) -> VideoResNetEncoder:
    if name not in _WEIGHT_URLS:
        no_pretrained_weights(name, pretrained)
    _check_classes(name, num_classes)
    state, source = fetch_pretrained(pretrained, default_url=_WEIGHT_URLS.get(name),
                                     default_what=f"torchvision {name} Kinetics-400 weights")
    model = VideoResNetEncoder(conv, widths, layers, bool(temporal_dilation_last_stage), preprocess,
                               num_classes, input_mode)
    model.encoder_name = name
    if state is not None:
        load_state_dict_strict(model, state, source, ignore_prefixes=() if num_classes else ("fc.",))
    return model


@register_encoder("r3d_18")
def r3d_18(*, pretrained: Pretrained = None, temporal_dilation_last_stage: bool = False,
           num_classes: int | None = None, input_mode: str = "rgb") -> VideoResNetEncoder:
    """R3D-18 (33.2 M parameters, 512-d); ``pretrained="default"``: torchvision
    ``R3D_18_Weights.KINETICS400_V1``."""
    return _build("r3d_18", "3d", pretrained, (64, 128, 256, 512), (2, 2, 2, 2),
                  temporal_dilation_last_stage, KINETICS_R3D_PREPROCESS, num_classes, input_mode)


@register_encoder("mc3_18")
def mc3_18(*, pretrained: Pretrained = None, num_classes: int | None = None,
           input_mode: str = "rgb") -> VideoResNetEncoder:
    """MC3-18 (11.7 M parameters, 512-d): R3D's stem and first stage, then 2D stages;
    ``pretrained="default"``: torchvision ``MC3_18_Weights.KINETICS400_V1``."""
    return _build("mc3_18", "mixed", pretrained, (64, 128, 256, 512), (2, 2, 2, 2), False,
                  KINETICS_R3D_PREPROCESS, num_classes, input_mode)


@register_encoder("r2plus1d_18")
def r2plus1d_18(*, pretrained: Pretrained = None, temporal_dilation_last_stage: bool = False,
                num_classes: int | None = None, input_mode: str = "rgb") -> VideoResNetEncoder:
    """R(2+1)D-18 (31.3 M parameters, 512-d); ``pretrained="default"``: torchvision
    ``R2Plus1D_18_Weights.KINETICS400_V1``."""
    return _build("r2plus1d_18", "2plus1d", pretrained, (64, 128, 256, 512), (2, 2, 2, 2),
                  temporal_dilation_last_stage, KINETICS_R3D_PREPROCESS, num_classes, input_mode)


@register_encoder("r3d_tiny")
def r3d_tiny(*, pretrained: Pretrained = None, widths: Sequence[int] = TINY_WIDTHS,
             layers: Sequence[int] = TINY_LAYERS, temporal_dilation_last_stage: bool = False,
             input_mode: str = "rgb") -> VideoResNetEncoder:
    """R3D with small stages (default 16-32-64-128, one block each; 128-d): tests and the CPU
    demo. No published weights; ``pretrained`` may be a path to weights vidssl saved."""
    return _build("r3d_tiny", "3d", pretrained, widths, layers, temporal_dilation_last_stage,
                  TINY_PREPROCESS, input_mode=input_mode)


@register_encoder("mc3_tiny")
def mc3_tiny(*, pretrained: Pretrained = None, widths: Sequence[int] = TINY_WIDTHS,
             layers: Sequence[int] = TINY_LAYERS, input_mode: str = "rgb") -> VideoResNetEncoder:
    """MC3 with small stages (default 16-32-64-128, one block each; 128-d)."""
    return _build("mc3_tiny", "mixed", pretrained, widths, layers, False, TINY_PREPROCESS,
                  input_mode=input_mode)


@register_encoder("r2plus1d_tiny")
def r2plus1d_tiny(*, pretrained: Pretrained = None, widths: Sequence[int] = TINY_WIDTHS,
                  layers: Sequence[int] = TINY_LAYERS, temporal_dilation_last_stage: bool = False,
                  input_mode: str = "rgb") -> VideoResNetEncoder:
    """R(2+1)D with small stages (default 16-32-64-128, one block each; 128-d)."""
    return _build("r2plus1d_tiny", "2plus1d", pretrained, widths, layers,
                  temporal_dilation_last_stage, TINY_PREPROCESS, input_mode=input_mode)
