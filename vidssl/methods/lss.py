"""LSS: language concept-space self-distillation (Ranasinghe & Ryoo, NeurIPS 2023).

No official code exists; what the paper states is implemented as stated, everything else is a
named parameter (``docs/language.md`` has the confirmed-vs-chosen table).

- **Views** (:class:`~vidssl.data.samplers.GlobalLocalSampler`): ``num_global`` global clips and
  ``num_local`` local clips per video, each at its own random time; global crops cover 40-100%
  of the frame, local crops 5-40% (SVT / DINO's recipe), colour jitter, grayscale, flip.
- **Student / teacher**: the encoder (any registered one) + a head into the CLIP text width ``E``
  (:func:`~vidssl.models.heads.concept_head`: an MLP, a Linear, or identity when the encoder
  already embeds in CLIP's joint space, e.g. CLIP-temporal), L2-normalised. The teacher is an
  EMA of the student, momentum ``momentum`` -> 1 on a cosine schedule; it sees the globals only.
- **Concept space** (:mod:`vidssl.language.concept_space`): frozen CLIP text embeddings of the
  vocabulary's classes and their attributes (curated file or a generated one), a buffer of the
  method (saved in checkpoints). Visual embeddings are projected onto it: ``s = z C^T``.
- **Losses** (:mod:`vidssl.losses.lss`): ``distill_weight * concept distillation +
  align_weight * concept alignment`` (``alignment``: ``class_attribute`` | ``entropy`` |
  ``none``). The teacher's similarities are centred (EMA centre, ``center_momentum``) and
  sharpened (``teacher_temp`` 0.04, after DINO's linear warm-up from ``warmup_teacher_temp``
  over the first ``warmup_teacher_temp_fraction`` of the steps; SVT's defaults make it
  constant); the student's use ``student_temp`` 0.1.
- **Export** (``export``): the **teacher** by default, as DINO / SVT evaluate it
  (``--checkpoint_key teacher``): the encoder object the trainer built, and so the one its
  checkpoints save as ``encoder``, is the teacher, and the student is a copy; ``"student"``
  swaps them.

No labels or captions of the training videos are used: only class *names* of a vocabulary.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.samplers import GlobalLocalSampler
from vidssl.data.transforms import RandomResizedCrop, dino_augment
from vidssl.errors import ConfigError
from vidssl.language.concept_space import MODES, vocabulary_concept_space
from vidssl.losses.lss import (ALIGNMENT_FORMS, concept_alignment, concept_distillation, mean_entropy,
                               teacher_distribution, update_center)
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, check_range, param_error, register_method
from vidssl.methods.common import ema_update, norm_kwargs
from vidssl.models.heads import HEAD_KINDS, concept_head

__all__ = ["LSSParams", "LSS", "EXPORTS"]

EXPORTS: tuple[str, ...] = ("teacher", "student")


@dataclass
class LSSParams:
    """LSS's parameters (defaults: paper scale, CLIP ViT-B/16 text tower, UCF101 vocabulary).

    Views: num_global (2), global_frames (8), global_stride (8), num_local (4), local_frames (4),
        local_stride (4), crop_size (224), local_crop_size (None = crop_size: encoders with a
        fixed input size such as CLIP ViTs need it), global_scale (0.4-1), local_scale
        (0.05-0.4), color_jitter_prob (0.8), short_video.
    Concept space: clip_model ("ViT-B-16"), clip_pretrained ("openai"; None = random-init text
        tower from clip_init_seed, for tests / the synthetic dataset only), vocabulary (a shipped
        name, "synthetic" or a class-list file), attributes ("curated" = the shipped file of the
        vocabulary, a path, or None), concept_mode ("classes" | "pooled" | "separate"),
        concept_cache_dir (None = ~/.cache/vidssl/concepts).
    Head: head ("auto" | "mlp" | "linear" | "identity"), head_hidden_dim (2048), head_layers (3).
    Distillation: teacher_temp (0.04), student_temp (0.1), center_momentum (0.9),
        momentum (0.996, cosine to 1). Teacher temperature warm-up (DINO): linear from
        warmup_teacher_temp (0.04) to teacher_temp over the first warmup_teacher_temp_fraction
        (0.0) of the training steps (DINO's warmup_teacher_temp_epochs / epochs), then constant;
        the defaults are SVT's (train_ssl.py: 0.04 -> 0.04 over 0 epochs, i.e. constant).
        Loss: distill_weight (1), align_weight (1), alignment ("class_attribute" | "entropy" |
        "none").
    Export: export ("teacher": the EMA teacher is the checkpoint's encoder and the zero-shot
        head, as DINO / SVT evaluate; "student": the trained student).
    """

    num_global: int = 2
    global_frames: int = 8
    global_stride: int = 8
    num_local: int = 4
    local_frames: int = 4
    local_stride: int = 4
    crop_size: int = 224
    local_crop_size: Optional[int] = None
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    color_jitter_prob: float = 0.8
    short_video: str = "pad"
    clip_model: str = "ViT-B-16"
    clip_pretrained: Optional[str] = "openai"
    clip_init_seed: int = 0
    vocabulary: str = "ucf101"
    attributes: Optional[str] = "curated"
    concept_mode: str = "separate"
    concept_cache_dir: Optional[str] = None
    head: str = "auto"
    head_hidden_dim: int = 2048
    head_layers: int = 3
    teacher_temp: float = 0.04
    student_temp: float = 0.1
    center_momentum: float = 0.9
    momentum: float = 0.996
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_fraction: float = 0.0
    export: str = "teacher"
    distill_weight: float = 1.0
    align_weight: float = 1.0
    alignment: str = "class_attribute"

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return param_error("lss", key, msg)

        check_choice("lss", "concept_mode", self.concept_mode, MODES)
        check_choice("lss", "alignment", self.alignment, ALIGNMENT_FORMS)
        if self.alignment == "class_attribute" and self.concept_mode != "separate":
            raise bad("alignment", "'class_attribute' needs concept_mode 'separate' (attribute concepts)")
        if self.concept_mode != "classes" and not self.attributes:
            raise bad("attributes", f"concept_mode {self.concept_mode!r} needs attributes; "
                                    f"use concept_mode 'classes' without")
        check_choice("lss", "head", self.head, HEAD_KINDS)
        check_choice("lss", "export", self.export, EXPORTS)
        check_ints("lss", self, {"crop_size": 1, "head_hidden_dim": 1, "head_layers": 1})
        if self.num_global + self.num_local < 2:
            raise bad("num_local", "distillation needs at least two views in all")
        check_range("lss", self, {"teacher_temp": "> 0", "student_temp": "> 0", "momentum": "[0, 1]",
                                  "center_momentum": "[0, 1]", "warmup_teacher_temp": "> 0",
                                  "warmup_teacher_temp_fraction": "[0, 1]"})
        with building_parts("lss"):
            build_sampler(self)
            RandomResizedCrop(self.crop_size, scale=tuple(self.global_scale))
            RandomResizedCrop(self.local_crop_size or self.crop_size, scale=tuple(self.local_scale))


def build_sampler(p: LSSParams) -> GlobalLocalSampler:
    return GlobalLocalSampler(num_global=p.num_global, global_frames=p.global_frames, global_stride=p.global_stride,
                              num_local=p.num_local, local_frames=p.local_frames, local_stride=p.local_stride,
                              short_video=p.short_video)


@register_method("lss", LSSParams)
class LSS(nn.Module):
    """LSS around any encoder of the vidssl protocol (see the module docstring).

    ``forward(batch)``: ``batch["views"]`` = globals then locals, uint8 ``(B, T, C, H, W)``.
    Returns ``loss``, ``loss_distill``, ``loss_align``, ``teacher_entropy`` (of the teacher's
    concept distribution; collapse shows as 0 or log K), ``agreement`` (student global and
    teacher of the other global pick the same concept) and ``momentum``.
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("agreement", "teacher-student agreement on the top concept")

    def __init__(self, encoder: nn.Module, params: LSSParams, concepts=None):
        super().__init__()
        self.params = p = params
        # The trainer saves (and evaluation loads) the encoder object it built and passed here:
        # with export "teacher" that object becomes the teacher and the student is its copy.
        copy_ = copy.deepcopy(encoder)
        student, teacher = (copy_, encoder) if p.export == "teacher" else (encoder, copy_)
        self.encoder = student
        self.sampler = build_sampler(p)
        space = concepts if concepts is not None else vocabulary_concept_space(
            p.vocabulary, p.attributes, mode=p.concept_mode, model=p.clip_model, pretrained=p.clip_pretrained,
            init_seed=p.clip_init_seed, cache_dir=p.concept_cache_dir)
        self.num_classes = len(space.class_names)
        self.concept_names = list(space.names)
        self.register_buffer("concepts", space.vectors.float().clone())
        self.register_buffer("class_index", space.class_index.clone())
        self.register_buffer("center", torch.zeros(len(space)))
        self.head = concept_head(p.head, encoder.num_features, space.dim, p.head_hidden_dim, p.head_layers,
                                 same_space=getattr(encoder, "clip_model", None) == p.clip_model)
        self.encoder_t = teacher.requires_grad_(False)
        self.head_t = copy.deepcopy(self.head).requires_grad_(False)
        norm = norm_kwargs(encoder)
        self.global_aug = dino_augment(p.crop_size, p.global_scale, p.color_jitter_prob, **norm)
        self.local_aug = dino_augment(p.local_crop_size or p.crop_size, p.local_scale, p.color_jitter_prob, **norm)
        self._momentum = p.momentum
        self._teacher_temp = self.teacher_temp_at(0, 1)

    @property
    def exported_encoder(self) -> nn.Module:
        """The encoder checkpoints save and evaluation reads (``export``)."""
        return self.encoder_t if self.params.export == "teacher" else self.encoder

    def teacher_temp_at(self, step: int, total_steps: int) -> float:
        """DINO's teacher temperature: linear from ``warmup_teacher_temp`` to ``teacher_temp``
        over the first ``warmup_teacher_temp_fraction * total_steps`` steps, then constant."""
        p = self.params
        warm = p.warmup_teacher_temp_fraction * max(1, total_steps)
        if step >= warm:
            return p.teacher_temp
        return p.warmup_teacher_temp + (p.teacher_temp - p.warmup_teacher_temp) * step / warm

    def embed(self, x: torch.Tensor, teacher: bool = False) -> torch.Tensor:
        """Model-layout clips ``(B, C, T, H, W)`` -> unit embeddings ``(B, E)`` in the concept space."""
        enc, head = (self.encoder_t, self.head_t) if teacher else (self.encoder, self.head)
        return F.normalize(head(enc.forward_features(x)), dim=-1)

    def set_step(self, step: int, total_steps: int) -> None:
        """Teacher momentum ``1 - (1 - m0) (cos(pi step / total) + 1) / 2`` and temperature
        (:meth:`teacher_temp_at`)."""
        self._teacher_temp = self.teacher_temp_at(step, total_steps)
        frac = step / max(1, total_steps)
        self._momentum = 1.0 - (1.0 - self.params.momentum) * (math.cos(math.pi * frac) + 1) / 2

    def after_step(self, step: int, total_steps: int) -> None:
        """EMA update of the teacher from the student."""
        ema_update([(self.encoder, self.encoder_t), (self.head, self.head_t)], self._momentum)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        p = self.params
        views = batch["views"]
        if len(views) != p.num_global + p.num_local:
            raise ValueError(f"LSS expects {p.num_global + p.num_local} views (globals then locals), got {len(views)}")
        with torch.no_grad():
            globals_ = [self.global_aug(v) for v in views[: p.num_global]]
            locals_ = [self.local_aug(v) for v in views[p.num_global:]]
        b, c = views[0].shape[0], self.concepts
        # student: globals in one call, locals in another (equal shapes within each group)
        z_g = self.embed(torch.cat(globals_))
        s_student = list((z_g @ c.T).split(b))
        if locals_:
            z_l = self.embed(torch.cat(locals_))
            s_student += list((z_l @ c.T).split(b))
        with torch.no_grad():
            s_teacher = list((self.embed(torch.cat(globals_), teacher=True) @ c.T).split(b))
        tt = self._teacher_temp
        distill = concept_distillation(s_teacher, s_student, self.center, tt, p.student_temp)
        align = concept_alignment(p.alignment, s_student, s_teacher, self.class_index, self.num_classes,
                                  self.center, tt, p.student_temp)
        loss = p.distill_weight * distill + p.align_weight * align
        with torch.no_grad():
            t_all = torch.cat(s_teacher)
            entropy = mean_entropy(teacher_distribution(t_all, self.center, tt))
            agree = (s_student[0].argmax(-1) == s_teacher[-1].argmax(-1)).float().mean()
            update_center(self.center, t_all, p.center_momentum)
        return {"loss": loss, "loss_distill": distill.detach(), "loss_align": align.detach(),
                "teacher_entropy": entropy, "agreement": agree, "chance": agree.new_tensor(1.0 / c.shape[0]),
                "momentum": torch.tensor(self._momentum, device=c.device),
                "teacher_temp": torch.tensor(tt, device=c.device)}
