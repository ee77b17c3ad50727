"""Video ViT encoders: VideoMAE (Tong et al., NeurIPS 2022) through Hugging Face ``transformers``.

:class:`VideoMAEEncoder` wraps a ``transformers.VideoMAEModel``: a tubelet embedding (Conv3d,
kernel = stride = ``(tubelet, patch, patch)``), fixed sinusoidal position embeddings and a ViT.

- ``forward_feature_map``: the patch tokens of the last layer reshaped to
  ``(B, D, T/tubelet, H/patch, W/patch)`` (token order is ``t, h, w``, as the embedding
  flattens its Conv3d output).
- ``forward_features``: the **mean of all tokens** (VideoMAE has no class token; its fine-tuning
  head also mean-pools). With ``use_mean_pooling=False`` (the pre-training checkpoints, e.g.
  ``MCG-NJU/videomae-base``) the model ends with a LayerNorm that is applied to the tokens first.
- ``forward_tokens(x, bool_masked_pos)``: the token sequence, optionally only the visible tokens
  of a VideoMAE-style mask.

The position embeddings are a fixed table sized by ``num_frames`` and ``image_size``, so the
input must have exactly ``(3, num_frames, image_size, image_size)``; the weights themselves do
not depend on those sizes (no learned position table), so a checkpoint loads at any size.

With ``num_classes`` the encoder keeps a finetuned checkpoint's classifier
(``VideoMAEForVideoClassification``: mean of the tokens -> ``fc_norm`` -> ``classifier``):
``forward_logits`` gives its logits (``forward_features`` stays the plain mean of the tokens, the
encoder contract); ``class_names`` come from the checkpoint's ``id2label``.
Registered: ``videomae_vit_s``, ``videomae_vit_b``, ``videomae_vit_l``, ``videomae_vit_h`` (patch
16, tubelet 2) and ``videomae_tiny``.

``transformers`` is imported lazily; without it, building a ViT encoder raises
:class:`~vidssl.errors.MissingDependencyError` (``pip install 'vidssl[vit]'``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD
from vidssl.errors import ConfigError, MissingDependencyError, VidsslError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, load_state_dict_strict,
                                            no_pretrained_weights, read_state_dict,
                                            wants_default_weights)

VIDEOMAE_BASE_ID = "MCG-NJU/videomae-base"
# VideoMAE's Kinetics-400 pre-training input: ImageNet statistics, 16 frames at stride 4,
# short side 256 (eval) / random-resized crop 224.
VIDEOMAE_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=16, stride=4,
                                 crop_size=224, resize_size=256)


def _videomae_classes(classification: bool = False) -> tuple[type, type]:
    try:
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEModel
    except ImportError:
        raise MissingDependencyError(package="transformers", extra="vit",
                                     feature="the video ViT encoders") from None
    return VideoMAEConfig, VideoMAEForVideoClassification if classification else VideoMAEModel


def _one_line(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VideoMAEEncoder(nn.Module):
    """A ``transformers.VideoMAEModel`` behind the vidssl encoder contract.

    Args:
        model: the ``VideoMAEModel`` (its ``config`` fixes the input size).
        preprocess: the input the weights expect.

    Shape:
        - input ``x``: ``(B, 3, T, H, W)`` float, normalised, with ``T = config.num_frames``
          and ``H = W = config.image_size``.
        - ``forward_tokens``: ``(B, N, D)``, ``N = (T/tubelet)(H/patch)(W/patch)``.
        - ``forward_feature_map``: ``(B, D, T/tubelet, H/patch, W/patch)``.
        - ``forward_features`` / ``forward``: ``(B, D)``, the mean over the ``N`` tokens.
    """

    def __init__(self, model: nn.Module, preprocess: Preprocess, fc_norm: nn.Module | None = None,
                 classifier: nn.Module | None = None):
        super().__init__()
        self.model = model
        if classifier is not None:
            self.fc_norm = fc_norm if fc_norm is not None else nn.Identity()
            self.classifier = classifier
        cfg = model.config
        self.features_are_map_mean = True
        self.num_features: int = int(cfg.hidden_size)
        self.preprocess: Preprocess = preprocess
        self.tubelet_size = int(cfg.tubelet_size)
        self.patch_size = int(cfg.patch_size)
        self.num_frames = int(cfg.num_frames)
        self.image_size = int(cfg.image_size)
        self.feature_stride: tuple[int, int, int] = (self.tubelet_size, self.patch_size,
                                                     self.patch_size)

    def _check_input(self, x: torch.Tensor) -> None:
        want = (3, self.num_frames, self.image_size, self.image_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            name = getattr(self, "encoder_name", "VideoMAE encoder")
            raise ConfigError(f"{name} takes clips of shape (B, {', '.join(map(str, want))}) "
                              f"(its position table is fixed), got {tuple(x.shape)}; match the "
                              f"clip length / crop size or build it with num_frames=, image_size=")

    def forward_tokens(self, x: torch.Tensor, bool_masked_pos: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, N, D)`` last-layer tokens; with a ``(B, N)`` boolean
        ``bool_masked_pos`` (True = masked, same count per clip) only the visible ones."""
        self._check_input(x)
        out = self.model(pixel_values=x.transpose(1, 2), bool_masked_pos=bool_masked_pos)
        return out.last_hidden_state

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D, T/tubelet, H/patch, W/patch)``."""
        tokens = self.forward_tokens(x)
        b, _, d = tokens.shape
        t = self.num_frames // self.tubelet_size
        h = w = self.image_size // self.patch_size
        return tokens.reshape(b, t, h, w, d).permute(0, 4, 1, 2, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, D)``: mean of the tokens."""
        return self.forward_tokens(x).mean(dim=1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> ``(B, num_classes)``: ``classifier(fc_norm(mean of the tokens))``."""
        if not hasattr(self, "classifier"):
            raise ConfigError(f"{getattr(self, 'encoder_name', 'VideoMAE')} has no classifier; load a finetuned "
                              f"checkpoint with num_classes=N")
        return self.classifier(self.fc_norm(self.forward_features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def copy_labels(config: Any, source: str) -> None:
    """The checkpoint's own ``id2label`` into ``config`` (same number of labels), so a classifier
    keeps its class names; nothing when the checkpoint's config cannot be read here."""
    try:
        own = type(config).from_pretrained(source)
    except Exception:  # noqa: BLE001 - the weights load below reports what is wrong
        return
    if getattr(own, "num_labels", None) == getattr(config, "num_labels", None):
        config.id2label = dict(own.id2label or {})
        config.label2id = dict(own.label2id or {v: k for k, v in config.id2label.items()})


def _from_hub(model_cls: type, source: str, config: Any, name: str) -> nn.Module:
    """``from_pretrained`` (hub id or local directory) into our ``config``; missing or
    mismatched weights are an error (extra ones, e.g. a pre-training decoder, are dropped)."""
    from transformers.utils import logging as hf_logging

    if "Classification" in model_cls.__name__:
        copy_labels(config, source)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our own strict check below replaces the load report
    hf_logging.disable_progress_bar()
    try:
        model, info = model_cls.from_pretrained(source, config=config, output_loading_info=True,
                                                ignore_mismatched_sizes=True)
    except Exception as err:  # noqa: BLE001 - OSError offline, HTTP errors, bad folders
        if os.path.isdir(source):
            raise VidsslError(f"cannot load {name} weights from folder {source} "
                              f"({_one_line(err)})") from None
        raise VidsslError(
            f"cannot load {name} weights {source!r} from the Hugging Face hub "
            f"({_one_line(err)}); offline, download it elsewhere (huggingface-cli download "
            f"{source}) and pass pretrained=LOCAL_DIR (with HF_HUB_OFFLINE=1 to skip retries)"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(k[0] if isinstance(k, (tuple, list)) else k)
                        for k in (info.get("mismatched_keys") or []))
    if missing or mismatched:
        parts = [f"{len(keys)} {label} keys (e.g. {keys[0]!r})"
                 for label, keys in (("missing", missing), ("shape-mismatched", mismatched))
                 if keys]
        raise VidsslError(f"weights {source!r} do not fit encoder {name!r}: {', '.join(parts)} "
                          f"(check the architecture arguments, e.g. use_mean_pooling)")
    return model.float()


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (timm's ``drop_path``): in training, each sample's residual
    branch is zeroed with probability ``prob`` and the kept ones scaled by ``1 / (1 - prob)``."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


@functools.lru_cache(maxsize=None)
def _drop_path_layer_class() -> type:
    from transformers.models.videomae.modeling_videomae import VideoMAELayer

    class DropPathVideoMAELayer(VideoMAELayer):
        """``VideoMAELayer.forward`` with drop path on its attention and MLP branches."""

        def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            attention = self.attention(self.layernorm_before(hidden_states), **kwargs)
            hidden_states = hidden_states + drop_path(attention, self.drop_prob, self.training)
            mlp = self.output.dropout(self.output.dense(self.intermediate(self.layernorm_after(hidden_states))))
            return hidden_states + drop_path(mlp, self.drop_prob, self.training)

    return DropPathVideoMAELayer


def set_drop_path(model: nn.Module, rate: float) -> None:
    """Stochastic depth in a ``transformers`` VideoMAE encoder, as VideoMAE's fine-tuning
    (``modeling_finetune.py``: ``drop_path_rate`` rising linearly over the blocks, from 0 on
    the first to ``rate`` on the last, on both residual branches of every block). HF's
    ``VideoMAELayer`` has none, so each layer becomes a subclass whose ``forward`` is the same
    computation with drop path on the two branches (weights and keys unchanged; ``rate = 0``
    leaves the model as it is)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"drop_path_rate must be in [0, 1), got {rate!r}")
    if rate == 0.0:
        return
    layers = list(model.encoder.layer)
    for i, layer in enumerate(layers):
        layer.__class__ = _drop_path_layer_class()
        layer.drop_prob = rate * i / (len(layers) - 1) if len(layers) > 1 else 0.0


def set_encoder_drop_path(encoder: nn.Module, rate: float) -> None:
    """Stochastic depth (rising linearly over the blocks to ``rate``) in a built ViT encoder, for
    fine-tuning: a VideoMAE encoder through :func:`set_drop_path`, a V-JEPA 2 encoder through its
    own ``VJEPA2DropPath`` modules (transformers' V-JEPA 2 layers have a ``drop_path`` slot).

    Raises:
        ConfigError: another encoder (a CNN has no residual blocks this knows), or a rate outside [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"drop_path_rate must be in [0, 1), got {rate!r}")
    name = getattr(encoder, "encoder_name", type(encoder).__name__)
    if isinstance(encoder, VideoMAEEncoder):
        set_drop_path(encoder.model, rate)
        return
    layers = list(getattr(getattr(encoder, "encoder", None), "layer", None) or [])
    if not layers or not all(hasattr(layer, "drop_path") for layer in layers):
        raise ConfigError(f"drop path is offered for the ViT encoders (videomae_*, vjepa2_*), not {name!r}; "
                          f"set it to 0")
    if rate == 0.0:
        return
    from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2DropPath

    for i, layer in enumerate(layers):
        layer.drop_path = VJEPA2DropPath(rate * i / (len(layers) - 1) if len(layers) > 1 else 0.0)


def _looks_like_path(source: str) -> bool:
    """A local path rather than a hub id (``org/name``): absolute, relative, home or a file."""
    return (source.startswith(("/", ".", "~")) or source.count("/") > 1 or os.sep != "/"
            and os.sep in source
            or source.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt")))


def _wrap(model: nn.Module, preprocess: Preprocess, name: str) -> VideoMAEEncoder:
    """A ``VideoMAEModel`` or a ``VideoMAEForVideoClassification`` as a vidssl encoder."""
    if hasattr(model, "videomae"):
        encoder = VideoMAEEncoder(model.videomae, preprocess, model.fc_norm, model.classifier)
        labels = getattr(model.config, "id2label", None) or {}
        encoder.class_names = [labels.get(i, labels.get(str(i), str(i))) for i in range(model.config.num_labels)]
    else:
        encoder = VideoMAEEncoder(model, preprocess)
    encoder.encoder_name = name
    return encoder


def _build(name: str, pretrained: Pretrained, preprocess: Preprocess, default_id: str | None,
           num_classes: int | None = None, **config: Any) -> VideoMAEEncoder:
    if num_classes is not None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"{name}: num_classes must be a positive integer or None, got {num_classes!r}")
        if not config.get("use_mean_pooling"):
            raise ConfigError(f"{name}: a classifier (num_classes) goes with use_mean_pooling=True (fc_norm)")
        config["num_labels"] = num_classes
    for key in ("num_frames", "image_size", "patch_size", "tubelet_size"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name}: {key} must be a positive integer, got {value!r}")
    if config["num_frames"] % config["tubelet_size"] or config["image_size"] % config["patch_size"]:
        raise ConfigError(f"{name}: num_frames must be a multiple of tubelet_size and image_size "
                          f"of patch_size, got {config['num_frames']}/{config['tubelet_size']}, "
                          f"{config['image_size']}/{config['patch_size']}")
    if default_id is None:
        no_pretrained_weights(name, pretrained)
    config_cls, model_cls = _videomae_classes(classification=num_classes is not None)
    cfg = config_cls(num_channels=3, **config)
    if pretrained is None or pretrained is False:
        model = model_cls(cfg)
    elif wants_default_weights(pretrained):
        model = _from_hub(model_cls, default_id, cfg, name)
    elif isinstance(pretrained, (str, os.PathLike)) and os.path.isfile(pretrained):
        encoder = _wrap(model_cls(cfg), preprocess, name)
        load_state_dict_strict(encoder, read_state_dict(pretrained), os.fspath(pretrained))
        return encoder
    elif isinstance(pretrained, (str, os.PathLike)):
        source = os.fspath(pretrained)
        if not os.path.isdir(source) and (default_id is None or _looks_like_path(source)):
            accepted = ("a state-dict file, a save_pretrained folder or a hub id" if default_id
                        else "a state-dict file or a save_pretrained folder")
            raise VidsslError(f"pretrained weights not found: {source} (expected {accepted})")
        model = _from_hub(model_cls, source, cfg, name)
    else:
        raise ConfigError(f"pretrained must be None, True, 'default', a hub id or a path, "
                          f"not {type(pretrained).__name__}")
    return _wrap(model, preprocess, name)


def _vit_preprocess(num_frames: int, image_size: int) -> Preprocess:
    return Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=num_frames,
                      stride=VIDEOMAE_PREPROCESS.stride, crop_size=image_size,
                      resize_size=round(image_size * 256 / 224))


# ViT sizes of the VideoMAE releases (MODEL_ZOO.md): hidden, layers, heads, MLP width.
_VIT_SIZES = {"s": (384, 12, 6, 1536), "b": (768, 12, 12, 3072), "l": (1024, 24, 16, 4096),
              "h": (1280, 32, 16, 5120)}


def _vit(size: str, pretrained: Pretrained, num_frames: int, image_size: int, use_mean_pooling: bool,
         num_classes: int | None, default_id: str | None, drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    hidden, layers, heads, mlp = _VIT_SIZES[size]
    encoder = _build(f"videomae_vit_{size}", pretrained, _vit_preprocess(num_frames, image_size), default_id,
                     num_classes, num_frames=num_frames, image_size=image_size, patch_size=16, tubelet_size=2,
                     hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=mlp, qkv_bias=True, layer_norm_eps=1e-12,
                     use_mean_pooling=bool(use_mean_pooling))
    set_drop_path(encoder.model, drop_path_rate)
    return encoder


@register_encoder("videomae_vit_b")
def videomae_vit_b(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 224,
                   use_mean_pooling: bool = False, num_classes: int | None = None,
                   drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    """VideoMAE ViT-B/16, tubelet 2 (86 M parameters, 768-d).

    ``pretrained``: ``True``/``"default"`` = ``MCG-NJU/videomae-base`` (Kinetics-400
    self-supervised pre-training), another hub id, a local ``save_pretrained`` folder, or a
    state-dict file. ``use_mean_pooling=False`` keeps the final LayerNorm the pre-training
    checkpoints carry; fine-tuned checkpoints (``*-finetuned-*``) need ``True`` and, to keep
    their classifier, ``num_classes``. ``drop_path_rate``: stochastic depth for fine-tuning
    (VideoMAE's scripts: 0.1 - 0.2; :func:`set_drop_path`), on every size below too.
    """
    return _vit("b", pretrained, num_frames, image_size, use_mean_pooling, num_classes, VIDEOMAE_BASE_ID,
                drop_path_rate)


@register_encoder("videomae_vit_s")
def videomae_vit_s(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 224,
                   use_mean_pooling: bool = False, num_classes: int | None = None,
                   drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    """VideoMAE ViT-S/16 (22 M parameters, 384-d); weights: a hub id (``MCG-NJU/videomae-small*``)
    or a local folder."""
    return _vit("s", pretrained, num_frames, image_size, use_mean_pooling, num_classes, "MCG-NJU/videomae-small",
                drop_path_rate)


@register_encoder("videomae_vit_l")
def videomae_vit_l(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 224,
                   use_mean_pooling: bool = False, num_classes: int | None = None,
                   drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    """VideoMAE ViT-L/16 (304 M parameters, 1024-d); ``"default"``: ``MCG-NJU/videomae-large``."""
    return _vit("l", pretrained, num_frames, image_size, use_mean_pooling, num_classes, "MCG-NJU/videomae-large",
                drop_path_rate)


@register_encoder("videomae_vit_h")
def videomae_vit_h(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 224,
                   use_mean_pooling: bool = False, num_classes: int | None = None,
                   drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    """VideoMAE ViT-H/16 (632 M parameters, 1280-d); ``"default"``: ``MCG-NJU/videomae-huge``."""
    return _vit("h", pretrained, num_frames, image_size, use_mean_pooling, num_classes, "MCG-NJU/videomae-huge",
                drop_path_rate)


@register_encoder("videomae_tiny")
def videomae_tiny(*, pretrained: Pretrained = None, num_frames: int = 16, image_size: int = 64,
                  hidden_size: int = 64, num_hidden_layers: int = 2, num_attention_heads: int = 4,
                  use_mean_pooling: bool = False, num_classes: int | None = None, patch_size: int = 16,
                  drop_path_rate: float = 0.0) -> VideoMAEEncoder:
    """A 2-layer, 64-wide VideoMAE (patch 16, tubelet 2) for tests and CPU demos; no
    published weights (``pretrained`` may be a state dict or folder vidssl saved). A smaller
    ``patch_size`` (8) gives small crops a finer token grid (the masked methods' CPU recipes)."""
    if not isinstance(hidden_size, int) or not isinstance(num_attention_heads, int) \
            or num_attention_heads <= 0 or hidden_size % num_attention_heads:
        raise ConfigError(f"videomae_tiny: hidden_size ({hidden_size!r}) must be a multiple of "
                          f"num_attention_heads ({num_attention_heads!r})")
    preprocess = Preprocess(mean=KINETICS_MEAN, std=KINETICS_STD, num_frames=num_frames,
                            stride=2, crop_size=image_size, resize_size=image_size)
    encoder = _build("videomae_tiny", pretrained, preprocess, None, num_classes, num_frames=num_frames,
                     image_size=image_size, patch_size=patch_size, tubelet_size=2, hidden_size=hidden_size,
                     num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                     intermediate_size=4 * hidden_size, qkv_bias=True, use_mean_pooling=bool(use_mean_pooling))
    set_drop_path(encoder.model, drop_path_rate)
    return encoder
