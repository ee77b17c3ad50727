"""Trained presets: a head (or the whole network) trained on augmented clips, multi-view test.

What the released linear evaluations of TCLR, CoCLR and CVRL do, and the finetuning recipes of
TCLR, CoCLR and VideoMAE (settings: :class:`~vidssl.eval.presets.TrainedProbeSettings`):

- every epoch, one random clip per training video (``clip_len`` frames at ``stride``), short
  side resized to ``resize_size`` in the loader worker, then the preset's augmentation recipe
  (:mod:`vidssl.eval.augment`) on the device, optionally repeated (``repeated_aug``) and mixed
  (mixup / cutmix with label smoothing);
- the model is ``head(encoder.forward_features(x))`` on a **copy** of the encoder; the head is
  ``[L2 norm] -> [BatchNorm1d] -> [LayerNorm] -> [Dropout] -> Linear``. With ``train="head"`` the
  encoder is frozen (no gradient) and its BatchNorm layers ``keep`` their statistics (eval
  mode), run in ``train`` mode (their running statistics follow the training clips, as TCLR's
  ``model.train()`` does) or are ``recompute``\\ d once before training (precise BN,
  :mod:`vidssl.eval.batchnorm`, on clean clips of the train videos);
- SGD / Adam / AdamW with per-group learning rates (encoder scale, ViT layer decay) and weight
  decay on every parameter (``decay_all``, torch's default) or on weights only; the schedule is
  ``multistep`` (per epoch), ``cosine`` (per step, warm-up first: the runtime's
  :func:`~vidssl.runtime.optim.warmup_cosine`) or ``plateau`` (TCLR: lr / 10 once the training
  loss has failed to improve ``patience`` times; stop below ``stop_lr``); the runtime's
  one-line stop on a non-finite loss and its update step;
- test: every view of every test video (the preset's temporal layout x crops), softmax
  probabilities averaged over the views; top-1 / top-5 per test video. No test-set selection:
  the last epoch is reported.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader, set_loader_epoch
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.data.transforms import ResizeClip
from vidssl.errors import ConfigError, VidsslError
from vidssl.eval.augment import build_augment, mix_batch, soft_targets
from vidssl.eval.batchnorm import batchnorm_layers, recompute_batchnorm, train_clip_batches
from vidssl.eval.features import eval_mode, iterate_views, resolve_clip_settings
from vidssl.eval.linear import topk_hits
from vidssl.eval.views import ViewSpec, view_sampler
from vidssl.runtime.device import autocast, autocast_dtype, resolve_device
from vidssl.runtime.optim import check_finite, layer_ids, optimizer_step, warmup_cosine
from vidssl.runtime.progress import progress_bar

log = logging.getLogger("vidssl.eval")

__all__ = ["ProbeHead", "ProbeModel", "run_trained_preset", "train_and_test", "param_groups_for"]


class ProbeHead(nn.Module):
    """``Linear(Dropout(LayerNorm(BatchNorm1d(L2(x)))))`` with each optional step off by default.

    Shape: ``(B, D)`` -> ``(B, classes)``.
    """

    def __init__(self, dim: int, num_classes: int, *, l2_norm: bool = False, batch_norm: bool = False,
                 layer_norm: bool = False, dropout: float = 0.0, init_std: float = 0.01, seed: int = 0):
        super().__init__()
        self.l2_norm = bool(l2_norm)
        self.bn = nn.BatchNorm1d(dim) if batch_norm else nn.Identity()
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(dim, num_classes)
        nn.init.normal_(self.fc.weight, std=init_std, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.l2_norm:
            x = F.normalize(x.float(), dim=1)
        return self.fc(self.dropout(self.norm(self.bn(x))))


class ProbeModel(nn.Module):
    """``head(encoder.forward_features(x))``; with ``frozen`` the encoder runs without gradient.

    Shape: ``(B, 3, T, H, W)`` -> ``(B, classes)``.
    """

    def __init__(self, encoder: nn.Module, head: ProbeHead, frozen: bool):
        super().__init__()
        self.encoder, self.head, self.frozen = encoder, head, frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                f = self.encoder.forward_features(x)
            return self.head(f.float())
        return self.head(self.encoder.forward_features(x))


# ---------------------------------------------------------------------- optimiser

def param_groups_for(model: ProbeModel, s: Any, lr: float) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning rate (encoder scale, layer decay) and weight decay."""
    ids, depth = layer_ids(model.encoder, key="layer_decay") if s.layer_decay is not None else ({}, 0)
    groups: dict[tuple[float, float], list[nn.Parameter]] = defaultdict(list)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0
        if name.startswith("encoder."):
            scale *= s.backbone_lr_scale
            if s.layer_decay is not None:
                scale *= s.layer_decay ** (depth + 1 - ids[name[len("encoder."):]])
        elif s.layer_decay is not None:
            scale *= 1.0                                    # the head: the last "layer"
        wd = s.weight_decay if (s.decay_all or (p.ndim >= 2 and not name.endswith(".bias"))) else 0.0
        groups[(scale, wd)].append(p)
    return [{"params": ps, "lr": lr * scale, "weight_decay": wd, "lr_scale": scale}
            for (scale, wd), ps in groups.items()]


def _optimizer(s: Any, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=s.momentum, nesterov=False)
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=groups[0]["lr"], betas=tuple(s.betas))
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=groups[0]["lr"], betas=tuple(s.betas))
    raise ConfigError(f"optimizer must be sgd, adam or adamw, got {s.optimizer!r}")


class _Schedule:
    """Per-step lr multipliers (``cosine``), per-epoch ones (``multistep``) or TCLR's plateau
    rule, applied on top of each group's base lr; ``step()`` is what the runtime's
    :func:`~vidssl.runtime.optim.optimizer_step` calls after each update."""

    def __init__(self, optimizer: torch.optim.Optimizer, s: Any, lr: float, steps_per_epoch: int):
        if s.schedule not in ("multistep", "cosine", "plateau"):
            raise ConfigError(f"schedule must be multistep, cosine or plateau, got {s.schedule!r}")
        self.opt, self.s = optimizer, s
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.factor, self.it, self.epoch = 1.0, 0, 0
        self.table = None
        if s.schedule == "cosine":
            total = max(1, s.epochs * steps_per_epoch)
            self.table = warmup_cosine(total, int(round(s.warmup_epochs * steps_per_epoch)),
                                       s.min_lr / lr if lr > 0 else 0.0, peak_in_warmup=True)
        self.best, self.bad, self.drops = math.inf, 0, 0
        self._apply()

    def _apply(self) -> None:
        f = self.table[min(self.it, len(self.table) - 1)] if self.table is not None else self.factor
        for g, b in zip(self.opt.param_groups, self.base):
            g["lr"] = b * f

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"] / max(self.opt.param_groups[0].get("lr_scale", 1.0), 1e-30)

    def step(self) -> None:                       # after every update
        self.it += 1
        if self.table is not None:
            self._apply()

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.s.schedule == "multistep":
            self.factor = self.s.gamma ** sum(1 for m in self.s.milestones if epoch >= m)
            self._apply()
        elif self.s.schedule == "plateau" and self.bad >= self.s.patience:
            self.drops += 1
            self.bad = 0
            self.factor = self.s.gamma ** self.drops
            self._apply()

    def end_epoch(self, loss: float) -> bool:
        """Update the plateau rule with the epoch's mean training loss; False = stop."""
        if self.s.schedule != "plateau":
            return True
        if loss > self.best:
            self.bad += 1
        else:
            self.best = loss
        return not (self.s.stop_lr is not None and self.lr < self.s.stop_lr)


# ---------------------------------------------------------------------- the run

def _check(s: Any) -> None:
    if s.train not in ("head", "all"):
        raise ConfigError(f"train must be head or all, got {s.train!r}")
    if s.bn not in ("keep", "train", "recompute"):
        raise ConfigError(f"bn must be keep, train or recompute, got {s.bn!r}")
    for key in ("epochs", "batch_size", "repeated_aug", "test_clips", "test_batch_size", "clip_len", "stride"):
        if getattr(s, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(s, key)}")
    if s.lr <= 0 or not 0.0 <= s.dropout < 1.0:
        raise ConfigError("lr must be > 0 and dropout in [0, 1)")


def train_and_test(encoder: nn.Module, train_index: VideoIndex, test_index: VideoIndex, s: Any, *,
                   num_classes: int, device: torch.device | str | None = None, progress: bool = True,
                   bn_batches: int = 200) -> dict[str, Any]:
    """Train ``s`` (a :class:`~vidssl.eval.presets.TrainedProbeSettings`) on ``train_index``, test on
    ``test_index``; returns hits per test video, the scored videos and training facts."""
    _check(s)
    dev = resolve_device(device)
    pre = resolve_clip_settings(encoder, s.clip_len, s.stride, s.size, s.resize_size)
    mean, std = pre["mean"], pre["std"]
    enc = copy.deepcopy(encoder).to(dev)
    frozen = s.train == "head"
    if s.drop_path and not frozen:
        from vidssl.models.encoders.video_vit import set_encoder_drop_path

        set_encoder_drop_path(enc, s.drop_path)
    facts: dict[str, Any] = {"bn": s.bn, "batchnorm_layers": len(batchnorm_layers(enc))}
    if frozen:
        enc.requires_grad_(False)
    if s.bn == "recompute" and facts["batchnorm_layers"]:
        clips = s.test_clips if s.test_layout != "sliding" else 4      # clean, evenly spaced clips
        batches = train_clip_batches(train_index, batch_size=max(2, s.batch_size), num_clips=clips,
                                     num_crops=1, clip_len=s.clip_len, stride=s.stride, size=s.test_size,
                                     resize_size=s.test_resize_size, mean=mean, std=std, decoder=s.decoder,
                                     num_workers=s.num_workers, seed=s.seed, device=dev)
        enc, facts["bn_batches"] = recompute_batchnorm(enc, batches, num_batches=bn_batches, device=dev, amp=s.amp)
        enc.requires_grad_(not frozen)
    head = ProbeHead(int(encoder.num_features), num_classes, l2_norm=s.l2_norm, batch_norm=s.head_bn,
                     layer_norm=s.head_norm, dropout=s.dropout, init_std=s.head_init_std, seed=s.seed)
    model = ProbeModel(enc, head, frozen).to(dev)

    batch = min(s.batch_size, len(train_index))
    data = ClipDataset(train_index, RandomClipSampler(s.clip_len, s.stride), decoder=s.decoder,
                       transform=ResizeClip(s.resize_size), seed=s.seed)
    loader = build_loader(data, batch, shuffle=True, num_workers=s.num_workers,
                          drop_last=len(train_index) > batch, seed=s.seed, distributed=False)
    gen = torch.Generator().manual_seed(s.seed)
    augment = build_augment(s.augment, s.size, mean, std, generator=gen)
    lr = s.lr * (s.batch_size / s.lr_batch_base if s.lr_batch_base else 1.0)
    opt = _optimizer(s, param_groups_for(model, s, lr))
    sched = _Schedule(opt, s, lr, len(loader))
    amp_dtype = autocast_dtype("auto" if s.amp else "off", dev)
    skips = SkipCounter()
    losses: list[float] = []
    step = 0
    with progress_bar(progress, s.epochs * len(loader), f"{s.augment} {train_index.name}") as advance:
        for epoch in range(s.epochs):
            sched.start_epoch(epoch)
            set_loader_epoch(loader, epoch)
            model.train()
            if frozen and s.bn != "train":
                model.encoder.eval()
            epoch_loss = []
            for b in loader:
                skips.update(b)
                clips = b["views"][0].to(dev, non_blocking=True)
                y = b["label"].to(dev, non_blocking=True)
                if s.repeated_aug > 1:
                    clips, y = clips.repeat(s.repeated_aug, 1, 1, 1, 1), y.repeat(s.repeated_aug)
                x = augment(clips)
                targets = None
                if s.mixup > 0 or s.cutmix > 0:
                    x, targets = mix_batch(x, y, num_classes, mixup=s.mixup, cutmix=s.cutmix, prob=s.mix_prob,
                                           switch_prob=s.mix_switch_prob, smoothing=s.label_smoothing,
                                           generator=gen)
                with autocast(dev, amp_dtype):
                    logits = model(x).float()
                if targets is not None:
                    loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
                elif s.label_smoothing > 0:
                    loss = torch.sum(-soft_targets(y, num_classes, s.label_smoothing)
                                     * F.log_softmax(logits, dim=-1), dim=-1).mean()
                else:
                    loss = F.cross_entropy(logits, y)
                check_finite({"loss": loss}, step, "lower the preset's lr or set its clip_grad")
                optimizer_step(loss, [p for g in opt.param_groups for p in g["params"]], opt, sched, s.clip_grad)
                epoch_loss.append(loss.item())
                step += 1
                advance(1)
            losses.append(float(np.mean(epoch_loss)) if epoch_loss else float("nan"))
            log.info("%s epoch %d/%d: loss %.4f, lr %.3g", s.augment, epoch + 1, s.epochs, losses[-1], sched.lr)
            if not sched.end_epoch(losses[-1]):
                log.info("plateau schedule: lr %.3g < %.3g, stopping after epoch %d", sched.lr, s.stop_lr, epoch + 1)
                break
    if skips.count:
        log.warning("trained preset: %s", skips.summary())

    spec = ViewSpec(clip_len=s.clip_len, stride=s.stride, size=s.test_size, resize_size=s.test_resize_size,
                    num_clips=s.test_clips, num_crops=s.test_crops, layout=s.test_layout,
                    window_step=s.test_window_step, max_clips=s.test_max_clips)

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return model(x).float().softmax(dim=1)

    probs, positions, skipped = [], [], []
    with eval_mode(model):
        for pos, per_video in iterate_views(
                probabilities, test_index, num_clips=spec.num_clips, num_crops=spec.num_crops,
                clip_len=spec.clip_len, stride=spec.stride, size=spec.size, resize_size=spec.resize_size,
                mean=mean, std=std, sampler=view_sampler(spec), batch_size=s.test_batch_size,
                num_workers=s.num_workers, device=dev, decoder=s.decoder, progress=progress, amp=s.amp,
                description=f"test {test_index.name}", skipped=skipped):
            probs += [p.float().mean(dim=0).cpu() for p in per_video]
            positions.append(pos)
    if not probs:
        raise VidsslError(f"no test video of {test_index.name!r} could be decoded")
    pos = torch.cat(positions).numpy()
    hits = topk_hits(torch.stack(probs), test_index.labels[pos], (1, 5))
    return {"hits": hits, "videos": [test_index.path(int(i)) for i in pos], "train_loss": losses,
            "epochs_run": len(losses), "steps": step, "lr": lr, "skipped_test": skipped,
            "skipped_train": skips.count, "test_views": spec.describe(), **facts}


def run_trained_preset(split: Any, preset: Any, s: Any) -> dict[str, Any]:
    """Protocol runner of the trained presets (``linear:tclr``, ``finetune:videomae``, ...)."""
    ctx = split.context
    num_classes = max(split.train.num_classes, split.test.num_classes)
    out = train_and_test(ctx.encoder, split.train, split.test, s, num_classes=num_classes, device=ctx.device,
                         progress=ctx.progress, bn_batches=split.config.bn.num_batches)
    split.videos = out["videos"]
    split.counts[f"{preset.name}_test_skipped"] = len(out["skipped_test"])
    ctx.info.setdefault("preset_runs", {}).setdefault(str(split.split), {})[preset.name] = {
        k: out[k] for k in ("epochs_run", "steps", "lr", "bn", "batchnorm_layers", "test_views",
                            "skipped_train") if k in out}
    return {"top1": out["hits"][1], "top5": out["hits"][5],
            "train_loss": out["train_loss"][-1] if out["train_loss"] else float("nan"),
            "epochs": float(out["epochs_run"])}
