"""MViT (v1-B, v2-S) and Video Swin (T, S, B) encoders: torchvision's own modules, same key names.

Each encoder is built by torchvision's constructor (``torchvision.models.video.mvit_v2_s()``,
``swin3d_t()``, ... with ``weights=None``) and keeps that model's submodules under their own
names, without the classifier unless ``num_classes`` is given; so torchvision's published
Kinetics-400 state dicts load into it strictly (minus ``head.*``) and the outputs equal
torchvision's (``tests/models/test_torchvision_video.py``).

- MViT (Fan et al., ICCV 2021; Li et al., CVPR 2022): ``forward_feature_map`` is the patch
  tokens of the last block after the final LayerNorm, ``(B, D, T', H', W')`` (16 x 224 x 224 ->
  8 x 7 x 7); ``forward_features`` their mean (the encoder contract: pooled = mean of the map);
  ``forward_cls`` the class token, which torchvision's head reads (``forward_logits``). The
  position encoding is sized for one input, so clips must be ``(3, temporal_size, *spatial_size)``.
- Swin3D (Liu et al., CVPR 2022): ``forward_feature_map`` is the normalised last stage
  (16 x 224 x 224 -> 8 x 7 x 7); ``forward_features`` its mean (torchvision's head input).

``forward_logits`` (with ``num_classes``) is torchvision's head on that feature. Registered:
``mvit_v1_b``, ``mvit_v2_s``, ``swin3d_t``, ``swin3d_s``, ``swin3d_b`` (torchvision sizes,
published weights) and ``mvit_tiny``, ``swin3d_tiny`` (tests and CPU runs, no weights).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torchvision.models import video as tvv
from torchvision.models.video.mvit import MSBlockConfig, MViT

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, fetch_pretrained, load_state_dict_strict,
                                            no_pretrained_weights)

# torchvision's weights' transforms and sampling: MViT 16 frames at 7.5 fps (stride 4 at 30 fps),
# mean/std 0.45/0.225; Swin3D 32 frames at 15 fps (stride 2), ImageNet mean/std; both resize 256, crop 224.
MVIT_PREPROCESS = Preprocess(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), num_frames=16, stride=4,
                             crop_size=224, resize_size=256)
SWIN3D_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=32, stride=2, crop_size=224,
                               resize_size=256)

_WEIGHTS: dict[str, Any] = {
    "mvit_v1_b": tvv.MViT_V1_B_Weights.KINETICS400_V1,
    "mvit_v2_s": tvv.MViT_V2_S_Weights.KINETICS400_V1,
    "swin3d_t": tvv.Swin3D_T_Weights.KINETICS400_V1,
    "swin3d_s": tvv.Swin3D_S_Weights.KINETICS400_V1,
    "swin3d_b": tvv.Swin3D_B_Weights.KINETICS400_V1,
}


def _check_classes(name: str, num_classes: int | None) -> None:
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ConfigError(f"{name}: num_classes must be a positive integer or None, got {num_classes!r}")


class MViTEncoder(nn.Module):
    """torchvision's ``MViT`` without its classifier (see the module docstring).

    Shape:
        - input ``x``: ``(B, 3, temporal_size, H, W)`` with ``(H, W) = spatial_size``, normalised.
        - ``forward_tokens``: ``(B, 1 + T'H'W', D)`` after the final norm, and ``(T', H', W')``.
        - ``forward_feature_map``: ``(B, D, T', H', W')`` (patch tokens); ``forward_features``:
          ``(B, D)`` (their mean); ``forward_cls``: ``(B, D)`` (the class token).
    """

    def __init__(self, model: MViT, preprocess: Preprocess, keep_head: bool):
        super().__init__()
        self.conv_proj, self.pos_encoding, self.blocks, self.norm = (
            model.conv_proj, model.pos_encoding, model.blocks, model.norm)
        if keep_head:
            self.head = model.head
        self.num_features: int = int(model.norm.normalized_shape[0])
        self.preprocess: Preprocess = preprocess
        t, (h, w) = self.pos_encoding.temporal_size, self.pos_encoding.spatial_size
        self.input_size = (t * self.conv_proj.stride[0], h * self.conv_proj.stride[1], w * self.conv_proj.stride[2])
        stride = list(self.conv_proj.stride)
        for blk in model.blocks:                  # query pooling shrinks the token grid
            pool = getattr(blk.attn, "pool_q", None)
            if pool is not None:
                stride = [a * b for a, b in zip(stride, pool.pool.stride)]
        self.feature_stride: tuple[int, int, int] = (int(stride[0]), int(stride[1]), int(stride[2]))
        self.features_are_map_mean = True

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        if x.dim() != 5 or tuple(x.shape[2:]) != self.input_size:
            name = getattr(self, "encoder_name", "MViT")
            raise ConfigError(f"{name} takes clips of shape (B, 3, {', '.join(map(str, self.input_size))}) "
                              f"(its position encoding is fixed), got {tuple(x.shape)}")
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = self.pos_encoding(x)
        thw = (self.pos_encoding.temporal_size,) + tuple(self.pos_encoding.spatial_size)
        for block in self.blocks:
            x, thw = block(x, thw)
        return self.norm(x), thw

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (t, h, w) = self.forward_tokens(x)
        return tokens[:, 1:].reshape(len(tokens), t, h, w, -1).permute(0, 4, 1, 2, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x)[0][:, 1:].mean(dim=1)

    def forward_cls(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the class token after the final norm (the head's input)."""
        return self.forward_tokens(x)[0][:, 0]

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "head"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 'MViT')} has no classifier; build it with num_classes=N")
        return self.head(self.forward_cls(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


class Swin3DEncoder(nn.Module):
    """torchvision's ``SwinTransformer3d`` without its classifier (see the module docstring).

    Shape: ``(B, 3, T, H, W)`` -> ``forward_feature_map`` ``(B, D, T/2, H/32, W/32)`` (padded up),
    ``forward_features`` ``(B, D)``.
    """

    def __init__(self, model: nn.Module, preprocess: Preprocess, keep_head: bool):
        super().__init__()
        self.patch_embed, self.pos_drop, self.features, self.norm = (
            model.patch_embed, model.pos_drop, model.features, model.norm)
        if keep_head:
            self.head = model.head
        self.num_features: int = int(model.num_features)
        self.preprocess: Preprocess = preprocess
        p = model.patch_embed.tuple_patch_size if hasattr(model.patch_embed, "tuple_patch_size") else (2, 4, 4)
        merges = sum(1 for m in model.features if not isinstance(m, nn.Sequential))
        self.feature_stride = (int(p[0]), int(p[1]) * 2 ** merges, int(p[2]) * 2 ** merges)
        self.features_are_map_mean = True

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.pos_drop(self.patch_embed(x)))
        return self.norm(x).permute(0, 4, 1, 2, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3, 4))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "head"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 'Swin3D')} has no classifier; build it with num_classes=N")
        return self.head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _build(name: str, make: Callable[[int], nn.Module], wrap: type, preprocess: Preprocess,
           pretrained: Pretrained, num_classes: int | None) -> nn.Module:
    weights = _WEIGHTS.get(name)
    if weights is None:
        no_pretrained_weights(name, pretrained)
    _check_classes(name, num_classes)
    state, source = fetch_pretrained(pretrained, default_url=None if weights is None else weights.url,
                                     default_what=f"torchvision {name} Kinetics-400 weights")
    model = wrap(make(num_classes or 400), preprocess, keep_head=num_classes is not None)
    model.encoder_name = name
    if state is not None:
        load_state_dict_strict(model, state, source, ignore_prefixes=() if num_classes else ("head.",))
    return model


def torchvision_categories(name: str) -> list[str] | None:
    """The class names of torchvision's published head for encoder ``name`` (Kinetics-400)."""
    weights = _WEIGHTS.get(name)
    return None if weights is None else list(weights.meta["categories"])


@register_encoder("mvit_v1_b")
def mvit_v1_b(*, pretrained: Pretrained = None, num_classes: int | None = None) -> MViTEncoder:
    """MViT-v1-B (36.6 M parameters with its head, 768-d class token), 16 x 224 x 224 input;
    ``pretrained="default"``: ``MViT_V1_B_Weights.KINETICS400_V1``."""
    return _build("mvit_v1_b", lambda c: tvv.mvit_v1_b(num_classes=c), MViTEncoder, MVIT_PREPROCESS,
                  pretrained, num_classes)


@register_encoder("mvit_v2_s")
def mvit_v2_s(*, pretrained: Pretrained = None, num_classes: int | None = None) -> MViTEncoder:
    """MViT-v2-S (34.5 M parameters with its head, 768-d), 16 x 224 x 224 input;
    ``pretrained="default"``: ``MViT_V2_S_Weights.KINETICS400_V1``."""
    return _build("mvit_v2_s", lambda c: tvv.mvit_v2_s(num_classes=c), MViTEncoder, MVIT_PREPROCESS,
                  pretrained, num_classes)


def tiny_mvit_blocks() -> list[MSBlockConfig]:
    """Two MViT-v2-style blocks, 16 -> 32 channels, one spatial query pooling."""
    return [MSBlockConfig(num_heads=1, input_channels=16, output_channels=32, kernel_q=[], kernel_kv=[3, 3, 3],
                          stride_q=[], stride_kv=[1, 2, 2]),
            MSBlockConfig(num_heads=2, input_channels=32, output_channels=32, kernel_q=[3, 3, 3],
                          kernel_kv=[3, 3, 3], stride_q=[1, 2, 2], stride_kv=[1, 1, 1])]


@register_encoder("mvit_tiny")
def mvit_tiny(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 64,
              num_classes: int | None = None) -> MViTEncoder:
    """A 2-block, 32-wide MViT-v2 (relative positions, residual pooling) for tests and CPU runs;
    input fixed at ``(3, num_frames, image_size, image_size)``."""
    if num_frames % 2 or image_size % 8:
        raise ConfigError(f"mvit_tiny: num_frames must be even and image_size a multiple of 8, got "
                          f"{num_frames}, {image_size}")
    pre = Preprocess(mean=MVIT_PREPROCESS.mean, std=MVIT_PREPROCESS.std, num_frames=num_frames, stride=2,
                     crop_size=image_size, resize_size=image_size)
    make = lambda c: MViT(spatial_size=(image_size, image_size), temporal_size=num_frames,  # noqa: E731
                          block_setting=tiny_mvit_blocks(), residual_pool=True, residual_with_cls_embed=False,
                          rel_pos_embed=True, proj_after_attn=True, num_classes=c)
    return _build("mvit_tiny", make, MViTEncoder, pre, pretrained, num_classes)


@register_encoder("swin3d_t")
def swin3d_t(*, pretrained: Pretrained = None, num_classes: int | None = None) -> Swin3DEncoder:
    """Video Swin-T (28.2 M parameters with its head, 768-d); ``pretrained="default"``:
    ``Swin3D_T_Weights.KINETICS400_V1``."""
    return _build("swin3d_t", lambda c: tvv.swin3d_t(num_classes=c), Swin3DEncoder, SWIN3D_PREPROCESS,
                  pretrained, num_classes)


@register_encoder("swin3d_s")
def swin3d_s(*, pretrained: Pretrained = None, num_classes: int | None = None) -> Swin3DEncoder:
    """Video Swin-S (49.8 M parameters with its head, 768-d); ``pretrained="default"``:
    ``Swin3D_S_Weights.KINETICS400_V1``."""
    return _build("swin3d_s", lambda c: tvv.swin3d_s(num_classes=c), Swin3DEncoder, SWIN3D_PREPROCESS,
                  pretrained, num_classes)


@register_encoder("swin3d_b")
def swin3d_b(*, pretrained: Pretrained = None, num_classes: int | None = None) -> Swin3DEncoder:
    """Video Swin-B (88.0 M parameters with its head, 1024-d); ``pretrained="default"``:
    ``Swin3D_B_Weights.KINETICS400_V1`` (the ImageNet-22K-initialised variant: the importer
    ``torchvision:swin3d_b_22k``)."""
    return _build("swin3d_b", lambda c: tvv.swin3d_b(num_classes=c), Swin3DEncoder, SWIN3D_PREPROCESS,
                  pretrained, num_classes)


@register_encoder("swin3d_tiny")
def swin3d_tiny(*, pretrained: Pretrained = None, num_classes: int | None = None) -> Swin3DEncoder:
    """A 2-stage, 16 -> 32-wide Video Swin (windows 2 x 4 x 4) for tests and CPU runs."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    pre = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=16, stride=2, crop_size=64, resize_size=64)
    make = lambda c: SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 1],  # noqa: E731
                                       num_heads=[1, 2], window_size=[2, 4, 4], stochastic_depth_prob=0.0,
                                       num_classes=c)
    return _build("swin3d_tiny", make, Swin3DEncoder, pre, pretrained, num_classes)
