"""Ready-made pipelines: CVRL's two views, DPC's per-frame colour jitter, and evaluation.

Each returns a :class:`~vidssl.data.transforms.video.Compose` taking uint8 ``(B, T, C, H, W)``
(on any device) and returning normalised float32 ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from vidssl.data.transforms.photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize
from vidssl.data.transforms.spatial import CenterCrop, RandomHorizontalFlip, RandomResizedCrop, Resize
from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD, Compose, Normalize, ToModelLayout

__all__ = ["cvrl_augment", "dpc_augment", "eval_transform", "blur_kernel_size"]


def blur_kernel_size(size: int) -> int:
    """SimCLR/CVRL's blur kernel: about 10% of the crop side, made odd (224 -> 23, 112 -> 11)."""
    return 2 * (size // 20) + 1


def cvrl_augment(
    size: int,
    view: int,
    *,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    generator: torch.Generator | None = None,
) -> Compose:
    """CVRL's clip-consistent augmentation for view ``0`` or ``1`` (Qian et al., 2021).

    Random resized crop (area 0.3-1, aspect 0.5-2), horizontal flip p=0.5, colour jitter
    (0.8, 0.8, 0.8, 0.2) p=0.8 in random order, grayscale p=0.2, Gaussian blur (kernel
    :func:`blur_kernel_size`, sigma 0.1-2) with p=1 for view 0 and p=0.1 for view 1, solarize
    (threshold 0.5) p=0.2 on view 1 only; then normalise and permute to ``(B, C, T, H, W)``.
    Every parameter is drawn once per clip.
    """
    if view not in (0, 1):
        raise ValueError(f"CVRL has views 0 and 1, got view={view}")
    steps = [
        RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.5, 2.0)),
        RandomHorizontalFlip(p=0.5),
        ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
        RandomGrayscale(p=0.2),
        GaussianBlur(blur_kernel_size(size), sigma=(0.1, 2.0), p=1.0 if view == 0 else 0.1),
    ]
    if view == 1:
        steps.append(RandomSolarize(threshold=0.5, p=0.2))
    steps += [Normalize(mean, std), ToModelLayout()]
    return Compose(steps, generator=generator)


def dpc_augment(
    size: int,
    *,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    generator: torch.Generator | None = None,
) -> Compose:
    """DPC's augmentation (Han et al., 2019; the authors' Kinetics recipe).

    Crop and flip are shared by the whole sequence: random resized crop (area 0.5-1, aspect
    3/4-4/3), flip p=0.5. Grayscale (p=0.5, DPC's random-channel variant) and colour jitter
    (0.5, 0.5, 0.5, 0.25, p=1) are drawn **per frame**. Then normalise and permute.
    """
    steps = [
        RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)),
        RandomHorizontalFlip(p=0.5),
        RandomGrayscale(p=0.5, per_frame=True, mode="channel"),
        ColorJitter(0.5, 0.5, 0.5, 0.25, p=1.0, per_frame=True),
        Normalize(mean, std),
        ToModelLayout(),
    ]
    return Compose(steps, generator=generator)


def eval_transform(
    size: int,
    resize_size: int | None = None,
    *,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> Compose:
    """Deterministic: resize the short side to ``resize_size`` (default ``round(size * 8 / 7)``,
    i.e. 128 for 112 and 256 for 224), centre crop ``size``, normalise, permute."""
    resize_size = round(size * 8 / 7) if resize_size is None else resize_size
    return Compose([Resize(resize_size), CenterCrop(size), Normalize(mean, std), ToModelLayout()])
