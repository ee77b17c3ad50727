"""Full-network finetuning: encoder + dropout + linear head, then multi-clip x multi-crop test.

Training: one random clip per video (:class:`~vidssl.data.samplers.RandomClipSampler`, the
encoder's clip length and stride), short side resized to ``resize_size`` and centre-cropped to
a square in the DataLoader worker (so videos of any size batch together), then on the device
a light, clip-consistent augmentation: random resized crop (area ``crop_scale`` = 0.5-1,
aspect 3/4-4/3) to ``size`` and a horizontal flip (p = 0.5). AdamW (no weight decay on biases
and norm parameters), linear warm-up then cosine decay to 0, computed per iteration up front;
the loop stops with an error on a non-finite loss. BatchNorm layers train (their statistics
adapt to the new data), the encoder is a copy unless ``copy_encoder=False``.

Test: ``test_clips`` (10) evenly spaced clips x ``test_crops`` (3) crops per video, softmax
probabilities averaged over the 30 views, top-1 / top-5.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader, set_loader_epoch
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.data.transforms import (Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop,
                                    ResizeClip, ToModelLayout)
from vidssl.eval.config import FinetuneConfig
from vidssl.eval.features import encode_clips, eval_mode, progress_bar, resolve_clip_settings, resolve_device
from vidssl.eval.linear import topk_accuracy
from vidssl.errors import VidsslError

log = logging.getLogger("vidssl.eval")


class FinetuneModel(nn.Module):
    """``head(dropout(encoder.forward_features(x)))``: ``(B, C, T, H, W)`` -> logits ``(B, classes)``."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.5, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.num_features), num_classes)
        nn.init.normal_(self.head.weight, std=0.01, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder.forward_features(x)))


def warmup_cosine(total_steps: int, warmup_steps: int) -> list[float]:
    """Per-step learning-rate multipliers: linear ``(s + 1) / warmup`` then cosine to 0."""
    out = []
    for s in range(total_steps):
        if s < warmup_steps:
            out.append((s + 1) / warmup_steps)
        else:
            progress = (s - warmup_steps) / max(1, total_steps - warmup_steps)
            out.append(0.5 * (1.0 + math.cos(math.pi * progress)))
    return out


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights of dimension >= 2 only (not on biases, norm scales/shifts)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class FinetuneResult:
    top1: float
    top5: float
    epochs: int
    steps: int
    train_loss: list[float]                      # mean loss per epoch
    skipped_train: int                           # samples replaced because a file failed
    skipped_test: list[tuple[str, str]]
    model: FinetuneModel | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5,
                "train_loss": self.train_loss[-1] if self.train_loss else float("nan")}


def finetune(encoder: nn.Module, train_index: VideoIndex, test_index: VideoIndex, *,
             config: FinetuneConfig | None = None, num_classes: int | None = None,
             device: str | torch.device | None = None, progress: bool = True,
             copy_encoder: bool = True) -> FinetuneResult:
    """Finetune ``encoder`` with a new head on ``train_index``; test on ``test_index``.

    ``config`` (:class:`~vidssl.eval.config.FinetuneConfig`) holds epochs, batch size, AdamW
    and schedule settings, augmentation and the test views; ``None`` clip settings come from
    ``encoder.preprocess``. The result holds the finetuned model.
    """
    cfg = config or FinetuneConfig()
    dev = resolve_device(device)
    s = resolve_clip_settings(encoder, cfg.clip_len, cfg.stride, cfg.size, cfg.resize_size)
    num_classes = int(num_classes or max(train_index.num_classes, test_index.num_classes))
    enc = copy.deepcopy(encoder) if copy_encoder else encoder
    model = FinetuneModel(enc, num_classes, cfg.dropout, cfg.seed).to(dev)

    data = ClipDataset(train_index, RandomClipSampler(s["clip_len"], s["stride"]),
                       decoder=cfg.decoder, transform=ResizeClip(s["resize_size"], s["resize_size"]),
                       seed=cfg.seed)
    loader = build_loader(data, min(cfg.batch_size, len(train_index)), shuffle=True,
                          num_workers=cfg.num_workers, drop_last=True, seed=cfg.seed,
                          distributed=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    augment = Compose([RandomResizedCrop(s["size"], scale=tuple(cfg.crop_scale), ratio=(3 / 4, 4 / 3)),
                       RandomHorizontalFlip(cfg.flip), Normalize(s["mean"], s["std"]),
                       ToModelLayout()], generator=gen)
    steps_per_epoch = len(loader)
    total = cfg.epochs * steps_per_epoch
    lr_mult = warmup_cosine(total, int(round(cfg.warmup_epochs * steps_per_epoch)))
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    use_amp = cfg.amp and dev.type == "cuda"
    skips = SkipCounter()
    losses: list[float] = []
    step = 0
    with progress_bar(progress, total, f"finetune {train_index.name}") as advance:
        for epoch in range(cfg.epochs):
            set_loader_epoch(loader, epoch)
            model.train()
            epoch_loss = []
            for batch in loader:
                skips.update(batch)
                x = augment(batch["views"][0].to(dev, non_blocking=True))
                y = batch["label"].to(dev, non_blocking=True)
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * lr_mult[step]
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise VidsslError(f"finetune loss is {loss.item()} at epoch {epoch} step {step}; "
                                      "lower finetune.lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                epoch_loss.append(loss.item())
                step += 1
                advance(1)
            losses.append(float(np.mean(epoch_loss)))
            log.info("finetune epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, losses[-1])
    if skips.count:
        log.warning("finetune: %s", skips.summary())

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return model(x).float().softmax(dim=1)

    with eval_mode(model):
        probs, pos, skipped = encode_clips(
            probabilities, test_index, num_clips=cfg.test_clips, num_crops=cfg.test_crops,
            batch_size=cfg.test_batch_size, num_workers=cfg.num_workers, device=dev,
            decoder=cfg.decoder, progress=progress, amp=cfg.amp,
            description=f"finetune test {test_index.name}", **s)
    acc = topk_accuracy(probs.mean(dim=1), test_index.labels[pos], (1, 5))
    return FinetuneResult(acc[1], acc[5], cfg.epochs, step, losses, skips.count, skipped, model)
