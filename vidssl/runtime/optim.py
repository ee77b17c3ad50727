"""The optimiser, its per-step schedule and the guarded update: one of each, shared by
pretraining (:mod:`vidssl.train.loop`) and finetuning (:mod:`vidssl.eval.finetune`).

- :class:`OptimConfig` / :func:`build_optimizer`: AdamW or SGD; biases and normalisation
  weights (1-D parameters) get no weight decay (:func:`param_groups`).
- :func:`warmup_cosine` / :func:`build_scheduler`: linear warm-up then cosine, one multiplier
  per step computed up front.
- :func:`check_finite` then :func:`optimizer_step`: a non-finite loss stops the run with one
  line *before* the weights change; backward, global grad-norm clip, optimiser and schedule step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import torch
from torch import nn

from vidssl.errors import ConfigError, VidsslError

__all__ = ["OptimConfig", "NonFiniteLossError", "warmup_cosine", "build_scheduler", "param_groups",
           "build_optimizer", "check_finite", "optimizer_step"]


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


class NonFiniteLossError(VidsslError):
    """The loss became NaN or infinite; training stopped before corrupting the weights."""


def warmup_cosine(total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0, *,
                  peak_in_warmup: bool = False) -> list[float]:
    """Multipliers of the base lr for steps ``0 .. total_steps - 1``: linear warm-up over
    ``warmup_steps`` steps, then a half cosine from 1 down to ``min_ratio``.

    Two placements of the end points, both in use:

    - ``peak_in_warmup=False`` (pretraining): the warm-up rises from ``1 / (W + 1)`` to
      ``W / (W + 1)`` (never 0: the first step already learns), the cosine starts at 1 on step
      ``W`` and reaches ``min_ratio`` on the last step. ``W`` is capped at ``total_steps - 1``.
    - ``peak_in_warmup=True`` (finetuning, MAE / timm's per-iteration form): the warm-up rises
      from ``1 / W`` to 1 on step ``W - 1``, the cosine starts at 1 on step ``W`` and would reach
      ``min_ratio`` one step after the last.
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
        if step < warmup_steps:
            out.append((step + 1) / ramp)
        else:
            t = min((step - warmup_steps) / decay, 1.0)
            out.append(min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    return out


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    min_ratio: float = 0.0, *, peak_in_warmup: bool = False) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`warmup_cosine` (its state dict is just the step counter)."""
    table = warmup_cosine(total_steps, warmup_steps, min_ratio, peak_in_warmup=peak_in_warmup)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: table[min(step, len(table) - 1)])


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on trainable weights of dimension >= 2 only (not on biases, norm scales and
    shifts); the decayed group first."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device | None = None,
                    *, key: str = "optim") -> torch.optim.Optimizer:
    """AdamW or SGD (momentum, no Nesterov) over :func:`param_groups`; fused kernels when
    ``cfg.fused`` (``None``: on CUDA devices)."""
    groups = param_groups(model, cfg.weight_decay)
    fused = cfg.fused if cfg.fused is not None else (device is not None and device.type == "cuda")
    extra = {"fused": True} if fused else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)
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
