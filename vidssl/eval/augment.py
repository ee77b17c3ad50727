"""Training augmentations of the trained evaluation presets, one recipe per released code base.

Each recipe maps ``(size, mean, std, generator)`` to a :class:`~vidssl.data.transforms.Compose`
taking uint8 ``(B, T, C, H, W)`` clips whose short side was resized in the loader worker, and
returning normalised float ``(B, C, T, size, size)``; every random draw is per clip (the same
for all frames) unless said otherwise. Differences from the released code are listed in the
recipe's docstring (and in ``docs/evaluation.md``).

Also here: batch mixup / cutmix with label smoothing (VideoMAE's finetuning, timm's ``Mixup``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torchvision.transforms.v2 as T2

from vidssl.data.transforms import (ColorJitter, Compose, Normalize, RandomErase, RandomGrayscale,
                                    RandomHorizontalFlip, RandomResizedCrop, ToModelLayout)
from vidssl.data.transforms import functional as VF
from vidssl.data.transforms.video import VideoTransform
from vidssl.errors import ConfigError

__all__ = ["AUGMENT_RECIPES", "build_augment", "RandomSquareCrop", "RandAugmentClip", "RandomErasePixels",
           "mix_batch", "soft_targets"]


class RandomSquareCrop(VideoTransform):
    """A square of side ``U(side) x`` the short side at a uniform position, resized to ``size``
    (TCLR's ``resized_crop(y0, x0, f * 240, f * 240)`` with ``f ~ U(0.6, 1)``)."""

    def __init__(self, size: int, side: tuple[float, float] = (0.6, 1.0),
                 generator: torch.Generator | None = None):
        super().__init__(generator)
        if not 0.0 < side[0] <= side[1] <= 1.0:
            raise ValueError(f"side must satisfy 0 < min <= max <= 1, got {side}")
        self.size, self.side = (int(size), int(size)), (float(side[0]), float(side[1]))

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict:
        b, h, w = shape[0], shape[-2], shape[-1]
        u = torch.rand(b, 3, generator=generator)
        s = torch.floor((self.side[0] + (self.side[1] - self.side[0]) * u[:, 0]) * min(h, w))
        top = torch.floor(u[:, 1] * (h - s + 1))
        left = torch.floor(u[:, 2] * (w - s + 1))
        return {"boxes": torch.stack([top, left, s, s], dim=1)}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        return VF.resized_crop(VF.to_float(x), params["boxes"], self.size)


class RandAugmentClip(VideoTransform):
    """torchvision's ``RandAugment(num_ops, magnitude)`` drawn once per clip and applied to all
    its frames (uint8 in, uint8 out), seeded from the pipeline's generator."""

    def __init__(self, num_ops: int = 4, magnitude: int = 7, generator: torch.Generator | None = None):
        super().__init__(generator)
        self.op = T2.RandAugment(num_ops=num_ops, magnitude=magnitude)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict:
        return {"seeds": torch.randint(0, 2 ** 31 - 1, (shape[0],), generator=generator)}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        out = []
        for clip, seed in zip(x, params["seeds"].tolist()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out.append(self.op(clip))                        # (T, C, H, W): one op draw per clip
        return torch.stack(out)


class RandomErasePixels(VideoTransform):
    """timm's ``RandomErasing(p, mode="pixel", max_count=1)`` as VideoMAE applies it: to each
    **frame** independently (its ``(T, C, H, W)`` clip is a batch to timm), a box of area
    ``U(area) x H x W`` and log-uniform aspect ``aspect`` filled with N(0, 1) noise, after
    normalisation. Input and output: normalised float ``(B, T, C, H, W)``."""

    def __init__(self, p: float = 0.25, area: tuple[float, float] = (0.02, 1 / 3),
                 aspect: tuple[float, float] = (0.3, 1 / 0.3), generator: torch.Generator | None = None):
        super().__init__(generator)
        self.p, self.area, self.aspect = float(p), area, aspect

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict:
        b, t, c, h, w = shape
        n = b * t
        tries = 10
        area = (self.area[0] + (self.area[1] - self.area[0]) * torch.rand(n, tries, generator=generator)) * h * w
        log_r = math.log(self.aspect[0]) + (math.log(self.aspect[1]) - math.log(self.aspect[0])) * torch.rand(
            n, tries, generator=generator)
        bh = torch.sqrt(area * torch.exp(log_r)).round()
        bw = torch.sqrt(area / torch.exp(log_r)).round()
        ok = (bh < h) & (bw < w) & (bh > 0) & (bw > 0)
        first = ok.to(torch.int8).argmax(dim=1, keepdim=True)
        bh, bw = bh.gather(1, first).squeeze(1), bw.gather(1, first).squeeze(1)
        u = torch.rand(n, 3, generator=generator)
        applied = (u[:, 0] < self.p) & ok.any(dim=1)
        top = torch.floor(u[:, 1] * (h - bh + 1).clamp_min(1))
        left = torch.floor(u[:, 2] * (w - bw + 1).clamp_min(1))
        noise = torch.randn(shape, generator=generator)
        return {"applied": applied, "box": torch.stack([top, left, bh, bw], 1), "noise": noise}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        b, t, c, h, w = x.shape
        top, left, bh, bw = params["box"].to(x.device).unbind(1)
        rows = torch.arange(h, device=x.device, dtype=top.dtype)
        cols = torch.arange(w, device=x.device, dtype=top.dtype)
        in_rows = (rows[None] >= top[:, None]) & (rows[None] < (top + bh)[:, None])
        in_cols = (cols[None] >= left[:, None]) & (cols[None] < (left + bw)[:, None])
        box = (in_rows[:, :, None] & in_cols[:, None, :]) & params["applied"].to(x.device)[:, None, None]
        box = box.view(b, t, 1, h, w)
        return torch.where(box, params["noise"].to(x.device, x.dtype), x)


def tclr_linear(size: int, mean, std, generator=None) -> Compose:
    """TCLR ``linear_eval/dl_linear.py`` (``baseline_dataloader_train_strong``): square crop of
    side ``U(0.6, 1)`` x the short side resized to ``size``; contrast ``U(0.9, 1.1)`` with p
    0.0625 before and p 0.0625 after hue ``U(-0.05, 0.05)`` p 0.15, saturation ``U(0.9, 1.1)``
    p 0.15, brightness ``U(0.9, 1.1)`` p 0.15; grayscale p 0.1; horizontal flip p 0.5; erase a
    black box of ``[9, 18]`` px (at 112) p 0.25. Differences: the two contrast slots are
    independent draws (the authors' are exclusive: one uniform decides both), the gamma change
    after grayscale (``U(0.85, 1.15)``, p 0.75) is left out, the crop position is uniform over
    the frame (the authors draw ``x0`` over ``[0, W (1 - f)]``, which keeps large crops at the
    left), frames are RGB (TCLR's are BGR: the TCLR importer swaps the first convolution's
    input channels instead)."""
    return Compose([
        RandomSquareCrop(size, (0.6, 1.0)),
        ColorJitter(contrast=0.1, p=0.0625),
        ColorJitter(hue=0.05, p=0.15),
        ColorJitter(saturation=0.1, p=0.15),
        ColorJitter(brightness=0.1, p=0.15),
        ColorJitter(contrast=0.1, p=0.0625),
        RandomGrayscale(p=0.1),
        RandomHorizontalFlip(p=0.5),
        RandomErase(p=0.25, size=(9 / 112, 19 / 112)),
        Normalize(mean, std), ToModelLayout()], generator=generator)


def coclr_linear(size: int, mean, std, generator=None) -> Compose:
    """CoCLR ``eval/main_classifier.py`` (train transform): ``RandomSizedCrop`` (area 0.2-1 of
    the frame, aspect 3/4-4/3, consistent over the clip) to ``size``, colour jitter (0.4, 0.4,
    0.4, 0.1) with p 0.3 (random order), then on the GPU a horizontal flip (p 0.5) and
    ImageNet-style normalisation (the encoder's mean / std here). Difference: the crop is taken
    from the frame resized to the loader's short side (CoCLR crops the native frame, then scales
    the crop to 128): the same region, resampled once instead of twice."""
    return Compose([
        RandomResizedCrop(size, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)),
        ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.3),
        RandomHorizontalFlip(p=0.5),
        Normalize(mean, std), ToModelLayout()], generator=generator)


def cvrl_linear(size: int, mean, std, generator=None) -> Compose:
    """CVRL ``dataloaders/video_ssl_input.py`` (linear-evaluation training): random crop-resize
    with area 0.3-1 and aspect 0.5-2 to ``size``, random horizontal flip; no colour
    augmentation; pixels in ``[0, 1]`` (the encoder's mean / std here)."""
    return Compose([
        RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.5, 2.0)),
        RandomHorizontalFlip(p=0.5),
        Normalize(mean, std), ToModelLayout()], generator=generator)


def videomae_finetune(size: int, mean, std, generator=None) -> Compose:
    """VideoMAE ``kinetics.py`` ``_aug_frame`` (``run_class_finetuning.py`` defaults):
    RandAugment ``rand-m7-n4-mstd0.5-inc1`` (here torchvision's ``RandAugment(4, 7)``: no
    magnitude noise, torchvision's op set instead of timm's "increasing" one), random resized
    crop (area 0.08-1, aspect 3/4-4/3) to ``size``, horizontal flip p 0.5, normalisation, random
    erasing p 0.25 (pixel mode, one box per frame)."""
    return Compose([
        RandAugmentClip(4, 7),
        RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        RandomHorizontalFlip(p=0.5),
        Normalize(mean, std),
        RandomErasePixels(p=0.25),
        ToModelLayout()], generator=generator)


AUGMENT_RECIPES: dict[str, Callable[..., Compose]] = {
    "tclr_linear": tclr_linear,
    "coclr_linear": coclr_linear,
    "cvrl_linear": cvrl_linear,
    "videomae_finetune": videomae_finetune,
}


def build_augment(name: str, size: int, mean, std, generator: torch.Generator | None = None) -> Compose:
    if name not in AUGMENT_RECIPES:
        raise ConfigError(f"unknown augmentation recipe {name!r}; known: {', '.join(AUGMENT_RECIPES)}")
    return AUGMENT_RECIPES[name](size, mean, std, generator)


# ---------------------------------------------------------------------- mixup / cutmix

def soft_targets(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot targets with label smoothing as timm's ``mixup_target`` makes them
    (``off = smoothing / C``, ``on = 1 - smoothing + off``). Shape ``(B,)`` -> ``(B, C)``."""
    off = smoothing / num_classes
    out = torch.full((len(y), num_classes), off, device=y.device)
    return out.scatter_(1, y[:, None], 1.0 - smoothing + off)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, mixup: float, cutmix: float,
              prob: float = 1.0, switch_prob: float = 0.5, smoothing: float = 0.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's batch-mode ``Mixup`` for clips ``(B, C, T, H, W)``: with probability ``prob``,
    cutmix (``Beta(cutmix, cutmix)``, one box for the batch, the same on every frame; lambda
    corrected to the box area) with probability ``switch_prob`` when both are on, else mixup
    (``Beta(mixup, mixup)``); the partner of clip ``i`` is clip ``B - 1 - i``. Returns the mixed
    clips and soft targets ``(B, C)`` (smoothed)."""
    targets = soft_targets(y, num_classes, smoothing)
    if (mixup <= 0 and cutmix <= 0) or torch.rand((), generator=generator).item() >= prob:
        return x, targets
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand((), generator=generator).item() < switch_prob)
    alpha = cutmix if use_cutmix else mixup
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    flipped = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = (int(v) for v in (torch.randint(0, h, (1,), generator=generator),
                                   torch.randint(0, w, (1,), generator=generator)))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    else:
        x = x * lam + flipped * (1.0 - lam)
    return x, targets * lam + targets.flip(0) * (1.0 - lam)
