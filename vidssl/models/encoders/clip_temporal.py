"""CLIP-temporal: open_clip's image tower on every frame, then a temporal transformer.

Per clip ``(B, 3, T, S, S)``: each frame goes through the CLIP ViT (class token, ``ln_post``,
projection), giving ``(B, T, E)`` frame embeddings in CLIP's joint image-text space (``E`` = 512
for ViT-B-16). A learned temporal position table (``max_frames x E``) is added and
``temporal_layers`` pre-norm transformer blocks mix the frames; the video embedding is the mean
over time. Every block's residual branch ends in a **zero-initialised** projection (attention
``out_proj`` and the MLP's second layer) and the position table starts at zero, so an untrained
model returns exactly the mean of the per-frame CLIP embeddings (frame-averaged CLIP, the
zero-shot baseline); training then learns temporal structure on top (tested to 0 difference).

- ``forward_features(x)``: ``(B, 3, T, S, S)`` -> ``(B, E)``, not normalised (zero-shot and LSS
  normalise);
- ``forward_frame_features(x)``: ``(B, T, E)`` per-frame CLIP embeddings (no temporal model);
- ``forward_feature_map(x)``: ``(B, E, T, S/p, S/p)``, the per-frame patch tokens after
  ``ln_post`` and the image projection (the spatial map DPC / TCLR-style losses pool); it does
  not pass through the temporal blocks.

``pretrained``: ``None`` (random init everywhere), ``"default"`` / ``True`` (the open_clip tag
``clip_pretrained`` for the image tower, e.g. ``"openai"``; temporal blocks as above) or a path
to a vidssl checkpoint / state dict of this encoder. The frame side is fixed by the CLIP model
(224 for ViT-B-16).
"""

from __future__ import annotations

import torch
from torch import nn

from vidssl.errors import ConfigError
from vidssl.models.encoders import register_encoder
from vidssl.models.encoders.base import Preprocess
from vidssl.models.encoders.weights import (Pretrained, load_state_dict_strict, no_pretrained_weights,
                                            read_state_dict, wants_default_weights)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class TemporalBlock(nn.Module):
    """Pre-norm transformer block over time whose residual branches start at exactly zero.

    Shape: ``(B, T, E)`` -> ``(B, T, E)``; at initialisation the output equals the input.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"temporal_heads ({heads}) must divide the CLIP embedding width ({dim})")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        for proj in (self.attn.out_proj, self.mlp[2]):
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CLIPTemporalEncoder(nn.Module):
    """An open_clip image tower applied per frame + zero-initialised temporal blocks (see module)."""

    def __init__(self, visual: nn.Module, embed_dim: int, image_size: int, patch_size: int, *,
                 temporal_layers: int, temporal_heads: int, max_frames: int, preprocess: Preprocess,
                 clip_model: str):
        super().__init__()
        self.visual = visual
        self.visual.output_tokens = False
        self.temporal_pos = nn.Parameter(torch.zeros(max_frames, embed_dim))
        self.temporal = nn.ModuleList(TemporalBlock(embed_dim, temporal_heads) for _ in range(temporal_layers))
        self.num_features = embed_dim
        self.image_size, self.patch_size, self.max_frames = image_size, patch_size, max_frames
        self.preprocess = preprocess
        self.clip_model = clip_model
        self.feature_stride = (1, patch_size, patch_size)

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"CLIP-temporal expects (B, 3, T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"CLIP-temporal ({self.clip_model}) needs {self.image_size}x{self.image_size} "
                             f"frames, got {h}x{w}")
        if t > self.max_frames:
            raise ValueError(f"clip of {t} frames exceeds max_frames={self.max_frames}")
        return x.transpose(1, 2).reshape(b * t, c, h, w)

    def forward_frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, S, S)`` -> ``(B, T, E)`` per-frame CLIP image embeddings."""
        b, t = x.shape[0], x.shape[2]
        return self.visual(self._frames(x)).view(b, t, -1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.forward_frame_features(x)
        f = f + self.temporal_pos[: f.shape[1]]
        for block in self.temporal:
            f = block(f)
        return f.mean(dim=1)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[0], x.shape[2]
        self.visual.output_tokens = True
        try:
            _, tokens = self.visual(self._frames(x))     # (B T, N, width) after ln_post
        finally:
            self.visual.output_tokens = False
        if getattr(self.visual, "proj", None) is not None:
            tokens = tokens @ self.visual.proj
        g = self.image_size // self.patch_size
        return tokens.reshape(b, t, g, g, -1).permute(0, 4, 1, 2, 3).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def build_clip_temporal(name: str, pretrained: Pretrained, *, clip_model: str, clip_pretrained: str | None,
                        num_frames: int, stride: int, temporal_layers: int, temporal_heads: int,
                        max_frames: int) -> CLIPTemporalEncoder:
    """Build a CLIP-temporal encoder around open_clip model ``clip_model`` (see the module doc)."""
    from vidssl.language.clip_models import load_clip

    for key, value, minimum in (("num_frames", num_frames, 1), ("stride", stride, 1),
                                ("temporal_layers", temporal_layers, 0), ("temporal_heads", temporal_heads, 1),
                                ("max_frames", max_frames, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"encoder {name!r}: {key} must be an int >= {minimum}, got {value!r}")
    if num_frames > max_frames:
        raise ConfigError(f"encoder {name!r}: num_frames {num_frames} > max_frames {max_frames}")
    tag = clip_pretrained if wants_default_weights(pretrained) else None
    seed = int(torch.randint(0, 2**31 - 1, ()))        # random init follows the global RNG
    clip = load_clip(clip_model, tag, init_seed=seed)
    visual = clip.visual
    size = visual.image_size[0] if isinstance(visual.image_size, tuple) else int(visual.image_size)
    patch = visual.patch_size[0] if isinstance(visual.patch_size, tuple) else int(visual.patch_size)
    embed_dim = int(visual.output_dim)
    pre = Preprocess(mean=OPENAI_MEAN, std=OPENAI_STD, num_frames=num_frames, stride=stride,
                     crop_size=size, resize_size=size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = CLIPTemporalEncoder(visual, embed_dim, size, patch, temporal_layers=temporal_layers,
                                  temporal_heads=temporal_heads, max_frames=max_frames, preprocess=pre,
                                  clip_model=clip_model)
    if pretrained is not None and pretrained is not False and not wants_default_weights(pretrained):
        load_state_dict_strict(enc, read_state_dict(pretrained), str(pretrained))
    enc.clip_pretrained = clip_pretrained  # the text tower zero-shot pairs with this image tower
    # where the image tower's weights came from: "random" cannot share a space with any text tower
    enc.image_weights = (str(tag) if tag else "random") if pretrained in (None, False) or wants_default_weights(
        pretrained) else "checkpoint"
    return enc


@register_encoder("clip_temporal_b16")
def clip_temporal_b16(*, pretrained: Pretrained = None, clip_pretrained: str = "openai", num_frames: int = 8,
                      stride: int = 8, temporal_layers: int = 1, temporal_heads: int = 8,
                      max_frames: int = 32) -> CLIPTemporalEncoder:
    """CLIP ViT-B/16 per frame (512-d), 8 frames at stride 8, 224 px; one temporal block."""
    return build_clip_temporal("clip_temporal_b16", pretrained, clip_model="ViT-B-16",
                               clip_pretrained=clip_pretrained, num_frames=num_frames, stride=stride,
                               temporal_layers=temporal_layers, temporal_heads=temporal_heads,
                               max_frames=max_frames)


@register_encoder("clip_temporal_b32")
def clip_temporal_b32(*, pretrained: Pretrained = None, clip_pretrained: str = "openai", num_frames: int = 8,
                      stride: int = 8, temporal_layers: int = 1, temporal_heads: int = 8,
                      max_frames: int = 32) -> CLIPTemporalEncoder:
    """CLIP ViT-B/32 per frame (512-d), 8 frames at stride 8, 224 px; one temporal block."""
    return build_clip_temporal("clip_temporal_b32", pretrained, clip_model="ViT-B-32",
                               clip_pretrained=clip_pretrained, num_frames=num_frames, stride=stride,
                               temporal_layers=temporal_layers, temporal_heads=temporal_heads,
                               max_frames=max_frames)


@register_encoder("clip_temporal_tiny")
def clip_temporal_tiny(*, pretrained: Pretrained = None, num_frames: int = 4, stride: int = 2,
                       temporal_layers: int = 1, temporal_heads: int = 2,
                       max_frames: int = 16) -> CLIPTemporalEncoder:
    """Test / CPU variant: vidssl's tiny random-init CLIP (32-d, 32 px frames); no weights."""
    no_pretrained_weights("clip_temporal_tiny", pretrained)
    return build_clip_temporal("clip_temporal_tiny", pretrained, clip_model="vidssl-tiny-clip",
                               clip_pretrained=None, num_frames=num_frames, stride=stride,
                               temporal_layers=temporal_layers, temporal_heads=temporal_heads,
                               max_frames=max_frames)
