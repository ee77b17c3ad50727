"""Per-step learning-rate schedule: linear warm-up then cosine decay, computed up front."""

from __future__ import annotations

import math

import torch


def warmup_cosine(total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> list[float]:
    """Multipliers of the base lr for steps ``0 .. total_steps - 1``.

    Warm-up rises linearly from ``1 / (warmup_steps + 1)`` to 1 (never 0: the first step
    already learns); then a half cosine from 1 to ``min_ratio`` at the last step.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = max(0, min(int(warmup_steps), total_steps - 1))
    out = []
    decay = max(1, total_steps - warmup_steps - 1)
    for step in range(total_steps):
        if step < warmup_steps:
            out.append((step + 1) / (warmup_steps + 1))
        else:
            t = (step - warmup_steps) / decay
            out.append(min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
    return out


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`warmup_cosine` (its state dict is just the step counter)."""
    table = warmup_cosine(total_steps, warmup_steps, min_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: table[min(step, len(table) - 1)])
