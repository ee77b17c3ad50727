"""Zero-shot action recognition: a CLIP text classifier against video embeddings.

- **Text side**: every class name of the test split (humanised: ``ApplyEyeMakeup`` -> "apply eye
  makeup") in every prompt template (``zeroshot.templates``, default
  :data:`~vidssl.language.concept_space.VIDEO_TEMPLATES`), optionally with the class's
  attributes (``zeroshot.attributes``: ``"curated"`` or a file), through the CLIP text tower;
  per class the unit prompt embeddings are averaged and re-normalised (open_clip's
  ``build_zero_shot_classifier`` arithmetic, tested to 1e-5) -> weights ``W (E, C)``.
- **Video side**: the encoder's clip embedding in CLIP space (:class:`ZeroShotEncoder`: the
  encoder, then the projection head it was trained with), averaged over the evaluation clips
  and crops (multi-clip aggregation), L2-normalised -> ``v (N, E)``.
- ``logits = logit_scale * v W`` (100, CLIP's trained scale, as open_clip's zero-shot eval),
  top-1 / top-5 on each split's test list; no training data is touched.

Which text tower: :func:`zeroshot_spec_from_encoder` (a CLIP-temporal encoder: its own open_clip
model and tag, identity head) or :func:`zeroshot_spec_from_checkpoint` (an LSS checkpoint: the
concept space's text tower and the trained projection head; works for any encoder LSS trained).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidssl.errors import ConfigError, VidsslError

log = logging.getLogger("vidssl.eval")


@dataclass
class ZeroShotSpec:
    """What zero-shot needs besides the encoder: the head into CLIP space and the text tower."""

    head: nn.Module = field(default_factory=nn.Identity)
    clip_model: str = "ViT-B-16"
    clip_pretrained: Optional[str] = "openai"
    clip_init_seed: int = 0
    source: str = ""


class ZeroShotEncoder(nn.Module):
    """``encoder`` followed by ``head``: clip ``(B, C, T, H, W)`` -> ``(B, E)`` in CLIP space,
    keeping the encoder protocol (``preprocess``, ``num_features``) for feature extraction."""

    def __init__(self, encoder: nn.Module, head: nn.Module, dim: int):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.preprocess = getattr(encoder, "preprocess", None)
        self.num_features = dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def zeroshot_spec_from_encoder(encoder: nn.Module) -> ZeroShotSpec:
    """A CLIP-temporal encoder's own text tower (identity head); ConfigError for other encoders."""
    model = getattr(encoder, "clip_model", None)
    if model is None:
        name = getattr(encoder, "encoder_name", type(encoder).__name__)
        raise ConfigError(f"zero-shot needs a concept space: encoder {name!r} is not a CLIP-temporal "
                          f"encoder; evaluate an LSS checkpoint (--checkpoint) instead")
    if getattr(encoder, "image_weights", None) == "random":
        log.warning("zero-shot: the CLIP-temporal image tower is random-init (no --pretrained default or "
                    "checkpoint), so it does not share a space with the text tower: expect chance accuracy")
    return ZeroShotSpec(nn.Identity(), model, getattr(encoder, "clip_pretrained", None), 0,
                        f"CLIP-temporal encoder ({model})")


def zeroshot_spec_from_checkpoint(path: str) -> ZeroShotSpec:
    """The projection head and text tower of an LSS checkpoint (or a CLIP-temporal encoder's own)."""
    from vidssl.methods import method_params
    from vidssl.models.checkpoint import load_checkpoint, load_encoder, submodule_state
    from vidssl.models.heads import concept_head

    state = load_checkpoint(path)
    method = ((state.get("config") or {}).get("method") or {})
    if method.get("name") != "lss":
        return zeroshot_spec_from_encoder(load_encoder(path))
    p = method_params("lss", method.get("params") or {})
    # the head that goes with the checkpoint's encoder: the EMA teacher's when the saved encoder
    # is the teacher (LSS's export: teacher), else the student's (export: student, and
    # checkpoints written before LSS exported its teacher)
    teacher = submodule_state(state["model"], "encoder_t")
    saved = state.get("encoder") or {}
    is_teacher = bool(saved) and saved.keys() == teacher.keys() and all(
        torch.equal(v, teacher[k]) for k, v in saved.items())
    head_state = submodule_state(state["model"], "head_t" if is_teacher else "head")
    concepts = state["model"].get("concepts")
    if concepts is None:
        raise VidsslError(f"checkpoint {path} has no concept vectors (not an LSS checkpoint?)")
    spec = state.get("encoder_spec") or {}
    in_dim = load_encoder(path).num_features
    # training's `auto` choice is in the checkpoint: no head weights = identity
    head = concept_head(p.head, int(in_dim), concepts.shape[1], p.head_hidden_dim, p.head_layers,
                        same_space=not head_state)
    try:
        head.load_state_dict(head_state)
    except RuntimeError as err:
        raise VidsslError(f"checkpoint {path}: its LSS head does not fit: {' '.join(str(err).split())[:160]}") from None
    return ZeroShotSpec(head.eval(), p.clip_model, p.clip_pretrained, p.clip_init_seed,
                        f"LSS checkpoint ({spec.get('name', '?')} + head, text tower {p.clip_model})")


def class_weights(class_names: list[str], spec: ZeroShotSpec, *, templates: Optional[list[str]] = None,
                  attributes: Optional[str] = None, vocabulary: Optional[str] = None,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """``(E, C)`` zero-shot weights for ``class_names`` (see the module docstring)."""
    from vidssl.language.concept_space import VIDEO_TEMPLATES, build_concept_space

    attrs = None
    if attributes:
        from vidssl.language.attributes import load_attributes

        doc = load_attributes(vocabulary if attributes == "curated" else attributes)
        attrs = doc["classes"]
        missing = [c for c in class_names if c not in attrs]
        if missing:
            raise ConfigError(f"zeroshot.attributes: no attributes for {len(missing)} class(es), e.g. {missing[:3]}")
    space = build_concept_space(class_names, attributes=attrs, mode="pooled" if attrs else "classes",
                                templates=tuple(templates or VIDEO_TEMPLATES), model=spec.clip_model,
                                pretrained=spec.clip_pretrained, init_seed=spec.clip_init_seed, device=device)
    return space.vectors.T.contiguous()


def zeroshot_logits(video_features: torch.Tensor, weights: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """``logit_scale * normalize(video_features) @ weights``. Shape ``(N, E) x (E, C) -> (N, C)``."""
    return logit_scale * F.normalize(video_features.float(), dim=-1) @ weights.float()


def topk_accuracy(logits: torch.Tensor, labels: np.ndarray | torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}`` fractions (k capped at the number of classes)."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    out = {}
    for k in ks:
        kk = min(k, logits.shape[1])
        hit = (logits.topk(kk, dim=1).indices == labels[:, None]).any(dim=1).float()
        out[f"top{k}"] = float(hit.mean()) if len(hit) else float("nan")
    return out


def zeroshot_classify(features: torch.Tensor, labels: np.ndarray, weights: torch.Tensor,
                      logit_scale: float = 100.0) -> dict[str, Any]:
    """Top-1 / top-5 of the zero-shot classifier on per-video features (one split's test set)."""
    if features.shape[1] != weights.shape[0]:
        raise ConfigError(f"video features have {features.shape[1]} dims but the text classifier {weights.shape[0]}: "
                          f"the encoder's head and the text tower do not match")
    return topk_accuracy(zeroshot_logits(features, weights, logit_scale), labels)
