"""V-JEPA 2 encoders (Assran et al., 2025) through Hugging Face ``transformers``.

:class:`VJEPA2Encoder` wraps the ``encoder`` of a ``transformers.VJEPA2Model`` (tubelet embedding
``2 x 16 x 16``, 3D rotary positions, a ViT, a final LayerNorm); the predictor of the
self-supervised checkpoints is not kept. Rotary positions have no fixed table, so any clip with
``T`` a multiple of the tubelet and ``H, W`` multiples of the patch goes through.

- ``forward_tokens``: the last layer's tokens ``(B, N, D)``, ``N = (T/2)(H/16)(W/16)``; with
  ``bool_masked_pos`` only the visible ones (V-JEPA's context encoder, :mod:`vidssl.methods.vjepa`);
- ``forward_feature_map``: ``(B, D, T/2, H/16, W/16)`` (token order ``t, h, w``);
- ``forward_features``: the mean of the tokens;
- with a classification checkpoint (``VJEPA2ForVideoClassification``: the authors' attentive
  probe, 3 self-attention + 1 cross-attention layers, and a linear layer), ``forward_logits``.

Registered: ``vjepa2_vit_l`` (1024-d, 24 layers, 16 heads), ``vjepa2_vit_h`` (1280, 32, 16),
``vjepa2_vit_g`` (1408, 40, 22, MLP ratio 48/11; the sizes of ``src/models/vision_transformer.py``
of ``facebookresearch/vjepa2``) and ``vjepa2_tiny``. ``pretrained``: a hub id
(``facebook/vjepa2-vitl-fpc64-256``, ``facebook/vjepa2-vitl-fpc16-256-ssv2``, ...) or a
``save_pretrained`` folder; the importer ``vjepa2:ID`` reads the checkpoint's own config.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError, MissingDependencyError, VidsslError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import Pretrained, no_pretrained_weights, wants_default_weights

VJEPA2_L_ID = "facebook/vjepa2-vitl-fpc64-256"


def _classes(classification: bool) -> tuple[type, type]:
    try:
        from transformers import VJEPA2Config, VJEPA2ForVideoClassification, VJEPA2Model
    except ImportError:
        raise MissingDependencyError(package="transformers", extra="vit",
                                     feature="the V-JEPA 2 encoders") from None
    return VJEPA2Config, VJEPA2ForVideoClassification if classification else VJEPA2Model


def _one_line(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VJEPA2Encoder(nn.Module):
    """The encoder of a ``VJEPA2Model`` behind the vidssl encoder contract (module docstring).

    Shape: input ``(B, 3, T, H, W)`` normalised; ``forward_features`` ``(B, D)``.
    """

    def __init__(self, encoder: nn.Module, config: Any, preprocess: Preprocess,
                 pooler: nn.Module | None = None, classifier: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        if classifier is not None:
            self.pooler, self.classifier = pooler, classifier
        self.num_features: int = int(config.hidden_size)
        self.preprocess: Preprocess = preprocess
        self.tubelet_size, self.patch_size = int(config.tubelet_size), int(config.patch_size)
        self.rope_size = int(config.crop_size)   # the grid masked tokens' rotary positions are decoded on
        self.feature_stride: tuple[int, int, int] = (self.tubelet_size, self.patch_size, self.patch_size)
        self.features_are_map_mean = True

    def forward_tokens(self, x: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, D)``; with ``bool_masked_pos`` (bool ``(B, N)``, True = hidden, the same count
        per clip) only the visible tokens go through the blocks, each keeping its rotary
        position (the authors' context encoder: ``apply_masks`` after the patch embedding)."""
        t, h, w = x.shape[2:]
        if x.dim() != 5 or t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise ConfigError(f"{getattr(self, 'encoder_name', 'V-JEPA 2')} takes (B, 3, T, H, W) clips with T a "
                              f"multiple of {self.tubelet_size} and H, W of {self.patch_size}, got {tuple(x.shape)}")
        if bool_masked_pos is None:
            return self.encoder(pixel_values_videos=x.transpose(1, 2)).last_hidden_state
        if h != self.rope_size or w != self.rope_size:
            raise ConfigError(f"{getattr(self, 'encoder_name', 'V-JEPA 2')}: masked tokens decode their rotary "
                              f"positions on a {self.rope_size} px grid (crop_size), got {h}x{w} px clips")
        enc = self.encoder
        tokens = enc.embeddings(x.transpose(1, 2))
        b, d = tokens.shape[0], tokens.shape[-1]
        keep = (~bool_masked_pos).nonzero()[:, 1].view(b, -1)
        hidden = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, d))
        for layer in enc.layer:
            hidden = layer(hidden, keep)[0]
        return enc.layernorm(hidden)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(x)
        t, h, w = (x.shape[2] // self.tubelet_size, x.shape[3] // self.patch_size, x.shape[4] // self.patch_size)
        return tokens.reshape(len(tokens), t, h, w, -1).permute(0, 4, 1, 2, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x).mean(dim=1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The checkpoint's attentive probe and linear classifier on the tokens."""
        if not hasattr(self, "classifier"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 'V-JEPA 2')} has no classifier; load a "
                              f"classification checkpoint with num_classes=N")
        return self.classifier(self.pooler(self.forward_tokens(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def wrap_vjepa2(model: nn.Module, preprocess: Preprocess, name: str) -> VJEPA2Encoder:
    """A ``VJEPA2Model`` or ``VJEPA2ForVideoClassification`` as a vidssl encoder."""
    if hasattr(model, "classifier"):
        enc = VJEPA2Encoder(model.vjepa2.encoder, model.config, preprocess, model.pooler, model.classifier)
        labels = getattr(model.config, "id2label", None) or {}
        enc.class_names = [labels.get(i, labels.get(str(i), str(i))) for i in range(model.config.num_labels)]
    else:
        enc = VJEPA2Encoder(model.encoder, model.config, preprocess)
    enc.encoder_name = name
    return enc


def _build(name: str, pretrained: Pretrained, default_id: str | None, num_frames: int, image_size: int,
           num_classes: int | None, **arch: Any) -> VJEPA2Encoder:
    if default_id is None:
        no_pretrained_weights(name, pretrained)
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ConfigError(f"{name}: num_classes must be a positive integer or None, got {num_classes!r}")
    config_cls, model_cls = _classes(num_classes is not None)
    cfg = config_cls(crop_size=image_size, frames_per_clip=num_frames, **arch,
                     **({"num_labels": num_classes} if num_classes else {}))
    # V-JEPA 2's evaluation: frame step 4, short side resized to the crop, ImageNet mean / std
    pre = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=num_frames, stride=4,
                     crop_size=image_size, resize_size=image_size)
    if pretrained is None or pretrained is False:
        return wrap_vjepa2(model_cls(cfg), pre, name)
    source = default_id if wants_default_weights(pretrained) else os.fspath(pretrained)
    if os.path.isfile(source):                     # a state dict of this encoder (vidssl saved it)
        from vidssl.models.encoders.weights import load_state_dict_strict, read_state_dict

        enc = wrap_vjepa2(model_cls(cfg), pre, name)
        load_state_dict_strict(enc, read_state_dict(source), source)
        return enc
    from transformers.utils import logging as hf_logging

    from vidssl.models.encoders.video_vit import copy_labels

    if num_classes is not None:
        copy_labels(cfg, source)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = model_cls.from_pretrained(source, config=cfg, output_loading_info=True)
    except Exception as err:  # noqa: BLE001 - offline, HTTP, bad folder
        raise VidsslError(f"cannot load {name} weights {source!r} ({_one_line(err)}); offline, download it "
                          f"elsewhere (huggingface-cli download {source}) and pass the local folder") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = sorted(k for k in (info.get("missing_keys") or []) if not k.startswith("predictor."))
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        first = missing[0] if missing else mismatched[0]
        raise VidsslError(f"weights {source!r} do not fit encoder {name!r}: {len(missing)} missing and "
                          f"{len(mismatched)} shape-mismatched keys (e.g. {first!r})")
    return wrap_vjepa2(model.float(), pre, name)


# hidden, layers, heads, MLP ratio (facebookresearch/vjepa2 src/models/vision_transformer.py)
_SIZES = {"l": (1024, 24, 16, 4.0), "h": (1280, 32, 16, 4.0), "g": (1408, 40, 22, 48 / 11)}
_DEFAULT_IDS = {"l": VJEPA2_L_ID, "h": "facebook/vjepa2-vith-fpc64-256", "g": "facebook/vjepa2-vitg-fpc64-256"}


def _vit(size: str, pretrained: Pretrained, num_frames: int, image_size: int, num_classes: int | None):
    hidden, layers, heads, mlp = _SIZES[size]
    return _build(f"vjepa2_vit_{size}", pretrained, _DEFAULT_IDS[size], num_frames, image_size, num_classes,
                  hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, mlp_ratio=mlp)


@register_encoder("vjepa2_vit_l")
def vjepa2_vit_l(*, pretrained: Pretrained = None, num_frames: int = 64, image_size: int = 256,
                 num_classes: int | None = None) -> VJEPA2Encoder:
    """V-JEPA 2 ViT-L/16 (300 M parameters, 1024-d); ``"default"``: ``facebook/vjepa2-vitl-fpc64-256``."""
    return _vit("l", pretrained, num_frames, image_size, num_classes)


@register_encoder("vjepa2_vit_h")
def vjepa2_vit_h(*, pretrained: Pretrained = None, num_frames: int = 64, image_size: int = 256,
                 num_classes: int | None = None) -> VJEPA2Encoder:
    """V-JEPA 2 ViT-H/16 (600 M parameters, 1280-d); ``"default"``: ``facebook/vjepa2-vith-fpc64-256``."""
    return _vit("h", pretrained, num_frames, image_size, num_classes)


@register_encoder("vjepa2_vit_g")
def vjepa2_vit_g(*, pretrained: Pretrained = None, num_frames: int = 64, image_size: int = 256,
                 num_classes: int | None = None) -> VJEPA2Encoder:
    """V-JEPA 2 ViT-g/16 (1 B parameters, 1408-d); ``"default"``: ``facebook/vjepa2-vitg-fpc64-256``."""
    return _vit("g", pretrained, num_frames, image_size, num_classes)


@register_encoder("vjepa2_tiny")
def vjepa2_tiny(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 64,
                hidden_size: int = 64, num_hidden_layers: int = 2, num_attention_heads: int = 4,
                num_pooler_layers: int = 1, num_classes: int | None = None, patch_size: int = 16) -> VJEPA2Encoder:
    """A 2-layer, 64-wide V-JEPA 2 (tiny predictor) for tests and CPU runs; no published weights.
    A smaller ``patch_size`` (8) gives small crops a finer token grid (the V-JEPA CPU recipe)."""
    if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
        raise ConfigError(f"vjepa2_tiny: patch_size must be a positive integer, got {patch_size!r}")
    return _build("vjepa2_tiny", pretrained, None, num_frames, image_size, num_classes, patch_size=patch_size,
                  hidden_size=hidden_size,
                  num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                  num_pooler_layers=num_pooler_layers, pred_hidden_size=32, pred_num_attention_heads=2,
                  pred_num_hidden_layers=1)
