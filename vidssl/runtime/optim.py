"""The optimiser, its per-step schedule and the guarded update: one of each, shared by
pretraining (:mod:`vidssl.train.loop`) and finetuning (:mod:`vidssl.eval.finetune`).

- :class:`OptimConfig` / :func:`build_optimizer`: AdamW or SGD; biases and normalisation
  weights (1-D parameters) get no weight decay (:func:`param_groups`); optionally layer-wise
  learning-rate decay for transformer encoders (``layer_decay``, each group's ``lr_scale``).
- :func:`warmup_cosine` / :func:`build_scheduler`: linear warm-up then cosine, one multiplier
  per step computed up front; :func:`schedule_from_config` adds the optional parts: a warm-up
  that starts from a given fraction of the lr, schedules planned for a longer run than the one
  that trains (V-JEPA's ``ipe_scale``), and a cosine weight-decay schedule (VideoMAE's
  ``weight_decay_end``, V-JEPA's ``final_weight_decay``), applied by :class:`StepSchedule`.
- :func:`check_finite` then :func:`optimizer_step`: a non-finite loss stops the run with one
  line *before* the weights change; backward, global grad-norm clip, optimiser and schedule step.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import torch
from torch import nn

from vidssl.errors import ConfigError, VidsslError

__all__ = ["OptimConfig", "NonFiniteLossError", "warmup_cosine", "cosine_values", "build_scheduler",
           "StepSchedule", "schedule_from_config", "param_groups", "layer_ids", "build_optimizer",
           "check_finite", "optimizer_step"]


@dataclass
class OptimConfig:
    name: str = "adamw"               # adamw | sgd
    lr: float = 1e-3                  # for the global batch
    weight_decay: float = 0.05
    momentum: float = 0.9             # sgd only
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0         # cosine floor, as a fraction of lr
    clip_grad: Optional[float] = 1.0  # max global grad norm; None = off
    fused: Optional[bool] = None      # fused AdamW/SGD kernels; None = on for CUDA, off elsewhere
    eps: float = 1e-8                 # adamw only
    warmup_start_ratio: Optional[float] = None  # warm-up rises linearly from this fraction of lr
                                      # (V-JEPA start_lr / lr, VideoMAE warmup_lr / lr); None: from 1/(W+1)
    weight_decay_end: Optional[float] = None    # cosine weight-decay schedule from weight_decay to
                                      # this (VideoMAE weight_decay_end, V-JEPA final_weight_decay); None: constant
    schedule_scale: float = 1.0       # lr / wd schedules planned for schedule_scale x the run's steps, of
                                      # which the run trains the first ones (V-JEPA ipe_scale 1.25)
    layer_decay: Optional[float] = None  # layer-wise lr decay of a transformer encoder (VideoMAE fine-tuning
                                      # 0.75): block i of L gets lr x layer_decay^(L + 1 - (i + 1))


class NonFiniteLossError(VidsslError):
    """The loss became NaN or infinite; training stopped before corrupting the weights."""


def warmup_cosine(total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0, *,
                  peak_in_warmup: bool = False, start_ratio: float | None = None) -> list[float]:
    """Multipliers of the base lr for steps ``0 .. total_steps - 1``: linear warm-up over
    ``warmup_steps`` steps, then a half cosine from 1 down to ``min_ratio``.

    Two placements of the end points, both in use:

    - ``peak_in_warmup=False`` (pretraining): the warm-up rises from ``1 / (W + 1)`` to
      ``W / (W + 1)`` (never 0: the first step already learns), the cosine starts at 1 on step
      ``W`` and reaches ``min_ratio`` on the last step. ``W`` is capped at ``total_steps - 1``.
    - ``peak_in_warmup=True`` (finetuning, MAE / timm's per-iteration form): the warm-up rises
      from ``1 / W`` to 1 on step ``W - 1``, the cosine starts at 1 on step ``W`` and would reach
      ``min_ratio`` one step after the last.

    ``start_ratio`` (pretraining placement only): the warm-up rises linearly from
    ``start_ratio`` on step 0 to ``start_ratio + (1 - start_ratio)(W - 1)/W`` on step ``W - 1``
    (V-JEPA's ``start_lr``, VideoMAE's ``warmup_lr``, as fractions of the peak).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if peak_in_warmup:
        warmup_steps = max(0, int(warmup_steps))
        ramp, decay = warmup_steps, max(1, total_steps - warmup_steps)
    else:
        warmup_steps = max(0, min(int(warmup_steps), total_steps - 1))
        ramp, decay = warmup_steps + 1, max(1, total_steps - warmup_steps - 1)
    out = []
    for step in range(total_steps):
        if step < warmup_steps and start_ratio is not None and not peak_in_warmup:
            out.append(start_ratio + (1 - start_ratio) * step / warmup_steps)
        elif step < warmup_steps:
            out.append((step + 1) / ramp)
        else:
            t = min((step - warmup_steps) / decay, 1.0)
            out.append(min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    return out


def cosine_values(total_steps: int, start: float, end: float) -> list[float]:
    """``start -> end`` on a half cosine over ``total_steps`` steps, no warm-up: step ``i`` gets
    ``end + (start - end)(1 + cos(pi i / total_steps)) / 2`` (the weight-decay schedules of
    VideoMAE's ``utils.cosine_scheduler`` and V-JEPA's ``CosineWDSchedule``)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return [end + (start - end) * 0.5 * (1 + math.cos(math.pi * i / total_steps)) for i in range(total_steps)]


class StepSchedule(torch.optim.lr_scheduler.LambdaLR):
    """A per-step lr table (a multiplier of each group's base lr, so per-group ``lr_scale`` is
    kept) and, optionally, a per-step weight-decay table for the groups whose weight decay is not
    0 (biases and norms stay undecayed). Both tables are computed up front; the state dict holds
    only the step counter, so a resumed run uses the tables of its own config."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_table: list[float],
                 wd_table: list[float] | None = None):
        self.lr_table, self.wd_table = list(lr_table), (list(wd_table) if wd_table else None)
        for group in optimizer.param_groups:
            group.setdefault("decayed", group.get("weight_decay", 0.0) > 0)
        super().__init__(optimizer, self.multiplier)

    def multiplier(self, step: int) -> float:
        return self.lr_table[min(step, len(self.lr_table) - 1)]

    def weight_decay(self, step: int) -> float | None:
        """The scheduled weight decay at ``step`` (``None`` without a schedule)."""
        return None if self.wd_table is None else self.wd_table[min(step, len(self.wd_table) - 1)]

    def apply_weight_decay(self) -> None:
        """Set the decayed groups' weight decay for the current step (``last_epoch``)."""
        wd = self.weight_decay(self.last_epoch)
        if wd is not None:
            for group in self.optimizer.param_groups:
                if group["decayed"]:
                    group["weight_decay"] = wd

    def step(self, epoch=None) -> None:  # noqa: D102 - LambdaLR's, plus the weight decay
        super().step() if epoch is None else super().step(epoch)
        if getattr(self, "wd_table", None) is not None:
            self.apply_weight_decay()

    def state_dict(self) -> dict:
        state = super().state_dict()
        for key in ("lr_table", "wd_table"):
            state.pop(key, None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        tables = self.lr_table, self.wd_table
        super().load_state_dict(state_dict)
        self.lr_table, self.wd_table = tables


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    min_ratio: float = 0.0, *, peak_in_warmup: bool = False) -> StepSchedule:
    """A :class:`StepSchedule` over :func:`warmup_cosine` (its state dict is just the step counter)."""
    return StepSchedule(optimizer, warmup_cosine(total_steps, warmup_steps, min_ratio,
                                                 peak_in_warmup=peak_in_warmup))


def schedule_from_config(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int,
                         *, key: str = "optim") -> StepSchedule:
    """The run's schedule from ``cfg``: warm-up (from ``warmup_start_ratio``) + cosine to
    ``min_lr_ratio`` and, with ``weight_decay_end``, a cosine weight-decay schedule, both planned
    over ``ceil(schedule_scale * total_steps)`` steps of which the run takes the first
    ``total_steps`` (with ``schedule_scale > 1`` the run ends before the cosine does, as V-JEPA's
    ``ipe_scale`` does)."""
    if not (cfg.schedule_scale >= 1.0):
        raise ConfigError(f"{key}.schedule_scale must be >= 1, got {cfg.schedule_scale!r}")
    if cfg.warmup_start_ratio is not None and not 0.0 <= cfg.warmup_start_ratio <= 1.0:
        raise ConfigError(f"{key}.warmup_start_ratio must be in [0, 1] or null, got {cfg.warmup_start_ratio!r}")
    if cfg.weight_decay_end is not None and cfg.weight_decay_end < 0:
        raise ConfigError(f"{key}.weight_decay_end must be >= 0 or null, got {cfg.weight_decay_end!r}")
    planned = max(total_steps, math.ceil(cfg.schedule_scale * total_steps - 1e-9))
    lr = warmup_cosine(planned, cfg.warmup_steps, cfg.min_lr_ratio, start_ratio=cfg.warmup_start_ratio)
    wd = (cosine_values(planned, cfg.weight_decay, cfg.weight_decay_end)[:total_steps]
          if cfg.weight_decay_end is not None else None)
    return StepSchedule(optimizer, lr[:total_steps], wd)


_BLOCK = re.compile(r"(?:^|\.)layer\.(\d+)\.")
_EMBED = re.compile(r"(?:^|\.)embeddings\.")


def layer_ids(encoder: nn.Module, *, key: str = "optim.layer_decay") -> tuple[dict[str, int], int]:
    """``({parameter name: layer id}, num_layers)`` of a transformer encoder built from
    ``transformers`` modules, VideoMAE's ``get_layer_id_for_vit``: the embeddings are layer 0,
    block ``i`` (a ``...layer.<i>...`` parameter) is ``i + 1``, everything else (final norms)
    ``num_layers + 1``.

    Raises:
        ConfigError: the encoder has no numbered transformer blocks.
    """
    names = [n for n, _ in encoder.named_parameters()]
    blocks = [int(m.group(1)) for m in map(_BLOCK.search, names) if m]
    if not blocks:
        name = getattr(encoder, "encoder_name", type(encoder).__name__)
        raise ConfigError(f"{key} needs a transformer encoder (numbered blocks); "
                          f"encoder {name!r} has none: set {key}=null")
    depth = max(blocks) + 1
    ids = {}
    for n in names:
        m = _BLOCK.search(n)
        ids[n] = int(m.group(1)) + 1 if m else (0 if _EMBED.search(n) else depth + 1)
    return ids, depth


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """Weight decay on trainable weights of dimension >= 2 only (not on biases, norm scales and
    shifts, nor on the names a model lists in ``no_weight_decay()``, timm's convention: VideoMAE's
    mask token); the decayed group first.

    With ``layer_decay`` (``model.encoder`` a transformer, :func:`layer_ids`), one group per
    (layer, decay or not), each with ``lr_scale = layer_decay ** (L + 1 - layer id)``: the
    embeddings learn slowest, the last block at ``layer_decay`` x the lr, everything outside the
    encoder (heads, decoders) at the full lr (VideoMAE ``optim_factory.py`` /
    ``LayerDecayValueAssigner``).
    """
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    if layer_decay is None:
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and name not in exempt else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]
    if not 0.0 < layer_decay <= 1.0:
        raise ConfigError(f"optim.layer_decay must be in (0, 1], got {layer_decay!r}")
    encoder = getattr(model, "encoder", model)
    ids, depth = layer_ids(encoder)
    prefix = "encoder." if encoder is not model else ""
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        rel = name[len(prefix):] if name.startswith(prefix) else None
        layer = ids.get(rel, depth + 1) if rel is not None else depth + 1
        decayed = p.ndim >= 2 and name not in exempt
        g = groups.setdefault((layer, decayed), {
            "params": [], "weight_decay": weight_decay if decayed else 0.0,
            "lr_scale": layer_decay ** (depth + 1 - layer), "layer": layer})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: (not k[1], k[0]))]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device | None = None,
                    *, key: str = "optim") -> torch.optim.Optimizer:
    """AdamW or SGD (momentum, no Nesterov) over :func:`param_groups`; fused kernels when
    ``cfg.fused`` (``None``: on CUDA devices). A group's lr is ``cfg.lr * lr_scale``."""
    groups = param_groups(model, cfg.weight_decay, getattr(cfg, "layer_decay", None))
    for g in groups:
        g["lr"] = cfg.lr * g.get("lr_scale", 1.0)
    fused = cfg.fused if cfg.fused is not None else (device is not None and device.type == "cuda")
    extra = {"fused": True} if fused else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=getattr(cfg, "eps", 1e-8),
                                 **extra)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False, **extra)
    raise ConfigError(f"{key}.name must be adamw or sgd, got {cfg.name!r}")


def check_finite(out: Mapping[str, torch.Tensor], step: int, hint: str) -> None:
    """Raise :class:`NonFiniteLossError` naming the (0-based) ``step`` + 1 and every scalar of
    ``out`` when ``out["loss"]`` is NaN or infinite; ``hint`` says what to change."""
    if torch.isfinite(out["loss"].detach()).all():
        return
    terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.items()
                      if isinstance(v, torch.Tensor) and v.numel() == 1)
    raise NonFiniteLossError(f"non-finite loss at step {step + 1} ({terms}); {hint}")


def optimizer_step(loss: torch.Tensor, params: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                   scheduler, clip_grad: float | None = None) -> None:
    """Backward, clip the global grad norm of ``params`` to ``clip_grad`` (``None``/0: no clip),
    optimiser step, schedule step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad:
        nn.utils.clip_grad_norm_(params, clip_grad)
    optimizer.step()
    scheduler.step()
