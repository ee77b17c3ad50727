"""Full-network finetuning: encoder + dropout + linear head, then multi-clip x multi-crop test.

Training: one random clip per video (:class:`~vidssl.data.samplers.RandomClipSampler`, the
encoder's clip length and stride), short side resized to ``resize_size`` and centre-cropped to
a square in the DataLoader worker (so videos of any size batch together), then on the device
a light, clip-consistent augmentation: random resized crop (area ``crop_scale`` = 0.5-1,
aspect 3/4-4/3) to ``size`` and a horizontal flip (p = 0.5). The trainer's optimiser, schedule
and update step (:mod:`vidssl.runtime.optim`): AdamW (no weight decay on biases and norm
parameters), linear warm-up then cosine decay to 0, computed per iteration up front
(``peak_in_warmup``), the same one-line stop on a non-finite loss, optional gradient clipping
(``finetune.clip_grad``). BatchNorm layers train (their statistics
adapt to the new data), the encoder is a copy unless ``copy_encoder=False``.

Test: ``test_clips`` (10) evenly spaced clips x ``test_crops`` (3) crops per video, softmax
probabilities averaged over the 30 views, top-1 / top-5.
"""

from __future__ import annotations

import copy
import logging
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
from vidssl.eval.features import encode_clips, eval_mode, resolve_clip_settings
from vidssl.eval.linear import topk_hits
from vidssl.runtime.device import autocast, autocast_dtype, resolve_device
from vidssl.runtime.optim import (OptimConfig, build_optimizer, build_scheduler, check_finite,
                                  optimizer_step)
from vidssl.runtime.progress import progress_bar

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
    hits: dict[int, np.ndarray] = field(default_factory=dict, repr=False)   # k -> per test video 0/1
    videos: list[str] = field(default_factory=list, repr=False)             # the test videos scored

    def metrics(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5,
                "train_loss": self.train_loss[-1] if self.train_loss else float("nan")}

    def outcomes(self) -> dict[str, float | np.ndarray]:
        """:meth:`metrics` with top-1 / top-5 as per-test-video 0/1 arrays (for intervals)."""
        return {**self.metrics(), "top1": self.hits[1], "top5": self.hits[5]}


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
    opt = build_optimizer(model, OptimConfig("adamw", cfg.lr, cfg.weight_decay, fused=False), dev, key="finetune")
    sched = build_scheduler(opt, total, int(round(cfg.warmup_epochs * steps_per_epoch)), peak_in_warmup=True)
    amp_dtype = autocast_dtype("auto" if cfg.amp else "off", dev)
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
                with autocast(dev, amp_dtype):
                    loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
                check_finite({"loss": loss}, step, "lower finetune.lr or set finetune.clip_grad")
                optimizer_step(loss, model.parameters(), opt, sched, cfg.clip_grad)
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
    hits = topk_hits(probs.mean(dim=1), test_index.labels[pos], (1, 5))
    return FinetuneResult(float(hits[1].mean()), float(hits[5].mean()), cfg.epochs, step, losses,
                          skips.count, skipped, model, hits, [test_index.path(int(i)) for i in pos])
