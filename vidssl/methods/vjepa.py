"""V-JEPA: latent video prediction (Bardes et al., 2024; V-JEPA 2, Assran et al., 2025).

One clip per video (16 frames at stride 4), random resized crop (area 0.3-1, aspect 0.75-1.35)
and flip. Two **multi-block 3D masks** per batch (:func:`~vidssl.data.masks.multiblock_masks`):
short-range (8 blocks of 15% of the frame) and long-range (2 blocks of 70%), each spanning the
whole clip in time. For each, the context encoder (the ViT being trained) sees only the context
tokens; a narrow predictor (:class:`~vidssl.models.masked_heads.LatentPredictor`: 12 blocks of
width 384, one mask token per mask) predicts the features of the masked tokens; the targets are
the layer-normalised tokens of an **EMA target encoder** on the full clip. Loss: L1 between
prediction and target, averaged over the masks; no pixels are reconstructed. The EMA momentum
rises linearly from 0.998 to 1 over ``1.25 x`` the run (``ipe_scale``); the learning-rate and
weight-decay schedules (warm-up from 2e-4 to 6.25e-4, cosine; weight decay 0.04 -> 0.4) are the
trainer's (``configs/pretrain/vjepa_k400.yaml``).

Reference code: ``facebookresearch/jepa`` (``app/vjepa/train.py``, ``app/vjepa/utils.py``,
``app/vjepa/transforms.py``, ``src/masks/multiblock3d.py``, ``src/models/predictor.py``,
``src/utils/schedulers.py``, ``configs/pretrain/vitl16.yaml``); the predictor's blocks are V-JEPA
2's (``facebookresearch/vjepa2``, ported as ``transformers.VJEPA2Predictor``). See
``docs/methods.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.masks import MultiBlockSpec, block_size, multiblock_masks
from vidssl.data.samplers import RandomClipSampler
from vidssl.data.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToModelLayout
from vidssl.losses.masked import jepa_loss
from vidssl.methods import building_parts, check_ints, check_range, param_error, register_method
from vidssl.methods.common import ema_update, norm_kwargs, vit_layout
from vidssl.models.masked_heads import LatentPredictor

__all__ = ["VJEPAParams", "BlockMask", "VJEPA"]


@dataclass
class BlockMask:
    """One mask generator (``mask:`` entries of V-JEPA's configs; :class:`MultiBlockSpec`)."""

    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    max_temporal_keep: float = 1.0
    max_keep: Optional[int] = None

    def spec(self) -> MultiBlockSpec:
        return MultiBlockSpec(self.num_blocks, tuple(self.spatial_scale), tuple(self.temporal_scale),
                              tuple(self.aspect_ratio), self.max_temporal_keep, self.max_keep)


def _authors_masks() -> list[BlockMask]:
    return [BlockMask(num_blocks=8, spatial_scale=(0.15, 0.15)), BlockMask(num_blocks=2, spatial_scale=(0.7, 0.7))]


@dataclass
class VJEPAParams:
    """V-JEPA's parameters (defaults: ``configs/pretrain/vitl16.yaml`` of the authors).

    Sampling: num_frames (16), stride (4: ``sampling_rate``), short_video ("pad").
    Augmentation: crop_size (224), crop_scale (0.3-1), crop_ratio (0.75-1.35), flip_prob (0.5).
    Masks: masks (short-range: 8 blocks x 15%, long-range: 2 blocks x 70%, full clip in time).
    Predictor: pred_depth (12), pred_dim (384), pred_heads (None: the encoder's, as V-JEPA;
        V-JEPA 2 uses 12), pred_mlp_ratio (4).
    Loss: loss_exp (1: L1), reg_coeff (0: the authors' predictor-variance term, off).
    Target encoder: momentum (0.998 -> 1.0, linear), momentum_schedule_scale (1.25: the
        schedule is planned for 1.25 x the run, ``ipe_scale``).
    """

    num_frames: int = 16
    stride: int = 4
    short_video: str = "pad"
    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.35)
    flip_prob: float = 0.5
    masks: list[BlockMask] = field(default_factory=_authors_masks)
    pred_depth: int = 12
    pred_dim: int = 384
    pred_heads: Optional[int] = None
    pred_mlp_ratio: float = 4.0
    loss_exp: float = 1.0
    reg_coeff: float = 0.0
    momentum: tuple[float, float] = (0.998, 1.0)
    momentum_schedule_scale: float = 1.25

    def __post_init__(self) -> None:
        check_ints("vjepa", self, {"num_frames": 1, "stride": 1, "crop_size": 1, "pred_depth": 1, "pred_dim": 1})
        check_range("vjepa", self, {"flip_prob": "[0, 1]", "loss_exp": "> 0", "reg_coeff": ">= 0"})
        if not self.masks:
            raise param_error("vjepa", "masks", "needs at least one mask generator")
        if not 0.0 <= self.momentum[0] <= self.momentum[1] <= 1.0:
            raise param_error("vjepa", "momentum", f"must be (start, end) with 0 <= start <= end <= 1, got "
                                                   f"{tuple(self.momentum)}")
        if not self.momentum_schedule_scale >= 1.0:
            raise param_error("vjepa", "momentum_schedule_scale", f"must be >= 1, got {self.momentum_schedule_scale}")
        for i, m in enumerate(self.masks):
            try:
                m.spec()
            except (TypeError, ValueError) as err:
                raise param_error("vjepa", f"masks.{i}", str(err)) from None
        with building_parts("vjepa"):
            build_sampler(self)
            RandomResizedCrop(self.crop_size, scale=tuple(self.crop_scale), ratio=tuple(self.crop_ratio))


def build_sampler(p: VJEPAParams) -> RandomClipSampler:
    return RandomClipSampler(num_frames=p.num_frames, stride=p.stride, short_video=p.short_video)


@register_method("vjepa", VJEPAParams)
class VJEPA(nn.Module):
    """V-JEPA around a ViT encoder with ``forward_tokens(x, bool_masked_pos)``.

    ``forward(batch)``: ``batch["views"]`` = ``[clip]`` uint8 ``(B, T, C, H, W)``. Returns ``loss``
    (= ``loss_jepa`` + ``reg_coeff`` x ``loss_reg``), ``loss_jepa``, ``context`` (fraction of tokens
    the context encoder saw, mean over masks), ``pred_std`` / ``target_std`` (spread of the
    predicted / target features over tokens: a collapse shows as 0) and ``momentum``.
    """

    def __init__(self, encoder: nn.Module, params: VJEPAParams):
        super().__init__()
        self.params = p = params
        self.encoder = encoder
        self.sampler = build_sampler(p)
        layout = vit_layout(encoder, "vjepa", p.num_frames, p.crop_size)
        self.grid = layout["grid"]
        self.specs = [m.spec() for m in p.masks]
        for i, spec in enumerate(self.specs):
            lo = MultiBlockSpec(spec.num_blocks, (spec.spatial_scale[0],) * 2, (spec.temporal_scale[0],) * 2,
                                (spec.aspect_ratio[0],) * 2)
            if 0 in block_size(lo, self.grid):
                raise param_error("vjepa", f"masks.{i}.spatial_scale", f"its smallest block is empty on the "
                                                                       f"{self.grid} token grid")
        heads = p.pred_heads or layout["heads"] or 1
        if p.pred_dim % heads:
            raise param_error("vjepa", "pred_heads", f"the predictor width {p.pred_dim} is not a multiple of {heads} heads")
        self.predictor = LatentPredictor(encoder.num_features, self.grid, layout["tubelet"], layout["patch"],
                                         dim=p.pred_dim, depth=p.pred_depth, heads=heads,
                                         num_mask_tokens=len(self.specs), mlp_ratio=p.pred_mlp_ratio)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.augment = Compose([RandomResizedCrop(p.crop_size, scale=tuple(p.crop_scale), ratio=tuple(p.crop_ratio)),
                                RandomHorizontalFlip(p.flip_prob), Normalize(**norm_kwargs(encoder)),
                                ToModelLayout()])
        self._momentum = p.momentum[0]

    def set_step(self, step: int, total_steps: int) -> None:
        """EMA momentum of this step: ``m0 + step (m1 - m0) / (scale x total)`` (the authors'
        ``momentum_scheduler``, whose value after the ``i``-th update is its ``i``-th)."""
        m0, m1 = self.params.momentum
        self._momentum = m0 + step * (m1 - m0) / (self.params.momentum_schedule_scale * max(1, total_steps))

    def after_step(self, step: int, total_steps: int) -> None:
        ema_update([(self.encoder, self.target_encoder)], self._momentum)

    def draw_masks(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per mask generator ``(context, target)`` token indices (``multiblock_masks``)."""
        return [multiblock_masks(batch_size, self.grid, spec) for spec in self.specs]

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        if len(views) != 1:
            raise ValueError(f"V-JEPA expects 1 view (clip), got {len(views)}")
        with torch.no_grad():
            x = self.augment(views[0])
            h = self.target_encoder.forward_tokens(x)
            h = F.layer_norm(h.float(), (h.shape[-1],))                      # (B, N, D)
        b, n = h.shape[:2]
        preds, targets, seen = [], [], []
        for i, (ctx, tgt) in enumerate(self.draw_masks(b)):
            ctx, tgt = ctx.to(x.device), tgt.to(x.device)
            hidden = torch.ones((b, n), dtype=torch.bool, device=x.device).scatter_(1, ctx, False)
            z = self.encoder.forward_tokens(x, bool_masked_pos=hidden)      # context tokens, ascending
            preds.append(self.predictor(z, ctx, tgt, mask_index=i))
            targets.append(torch.gather(h, 1, tgt.unsqueeze(-1).expand(-1, -1, h.shape[-1])))
            seen.append(ctx.shape[1] / n)
        loss_jepa = jepa_loss(preds, targets, self.params.loss_exp)
        pstd = sum(torch.sqrt(z.float().var(dim=1) + 1e-4) for z in preds) / len(preds)  # the authors' reg_fn
        loss_reg = torch.mean(F.relu(1.0 - pstd))
        loss = loss_jepa + self.params.reg_coeff * loss_reg if self.params.reg_coeff else loss_jepa
        return {"loss": loss, "loss_jepa": loss_jepa.detach(), "loss_reg": loss_reg.detach(),
                "context": torch.tensor(sum(seen) / len(seen), device=x.device), "pred_std": pstd.mean().detach(),
                "target_std": h.std(dim=1).mean(), "momentum": torch.tensor(self._momentum, device=x.device)}
