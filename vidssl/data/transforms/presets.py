"""Ready-made pipelines: CVRL's two views, DPC's per-frame colour jitter, TCLR's per-clip recipe,
a DINO-style view (LSS), and evaluation.

Each returns a :class:`~vidssl.data.transforms.video.Compose` taking uint8 ``(B, T, C, H, W)``
(on any device) and returning normalised float32 ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from vidssl.data.transforms.photometric import (ColorJitter, GaussianBlur, RandomChannelDrop, RandomGrayscale,
                                                RandomSolarize)
from vidssl.data.transforms.spatial import CenterCrop, RandomErase, RandomHorizontalFlip, RandomResizedCrop, Resize
from vidssl.data.transforms.video import KINETICS_MEAN, KINETICS_STD, Compose, Normalize, ToModelLayout

__all__ = ["cvrl_augment", "dpc_augment", "tclr_augment", "dino_augment", "eval_transform", "blur_kernel_size",
           "blur_sigma_range", "BLUR_SIGMA_MODES"]

#: How CVRL's blur sigma follows the crop side: ``"scaled"`` (the 224-px range times
#: ``size / 224``) or ``"fixed"`` (the 224-px range at every size, as the TF code is written).
BLUR_SIGMA_MODES: tuple[str, ...] = ("scaled", "fixed")
BLUR_REFERENCE_SIZE = 224   # the crop side CVRL's blur values were chosen for
BLUR_SIGMA = (0.1, 2.0)     # CVRL's sigma range at 224 px (TF ``random_blur``)


def blur_kernel_size(size: int) -> int:
    """SimCLR/CVRL's blur kernel: about 10% of the crop side, made odd (224 -> 23, 112 -> 11);
    the TF code's ``height // 10`` rounded to ``2 * radius + 1``."""
    return 2 * (size // 20) + 1


def blur_sigma_range(size: int, mode: str = "scaled") -> tuple[float, float]:
    """CVRL's blur sigma range for a crop of side ``size``: ``"scaled"`` = (0.1, 2.0) x
    ``size / 224`` (the same blur relative to the frame as at 224 px, where CVRL's values come
    from), ``"fixed"`` = (0.1, 2.0) at every size (the TF code draws from it whatever the crop)."""
    if mode not in BLUR_SIGMA_MODES:
        raise ValueError(f"blur_sigma must be one of {BLUR_SIGMA_MODES}, got {mode!r}")
    factor = size / BLUR_REFERENCE_SIZE if mode == "scaled" else 1.0
    return (BLUR_SIGMA[0] * factor, BLUR_SIGMA[1] * factor)


def cvrl_augment(
    size: int,
    view: int,
    *,
    crop_scale: Sequence[float] = (0.3, 1.0),
    crop_ratio: Sequence[float] = (0.5, 2.0),
    flip_prob: float = 0.5,
    color_jitter: Sequence[float] = (0.8, 0.8, 0.8, 0.2),
    color_jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    blur_prob: Sequence[float] = (1.0, 0.1),
    solarize_prob: Sequence[float] = (0.0, 0.2),
    blur_sigma: str = "scaled",
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    generator: torch.Generator | None = None,
) -> Compose:
    """CVRL's clip-consistent augmentation for view ``0`` or ``1`` (Qian et al., 2021).

    With the defaults (the paper's): random resized crop (area 0.3-1, aspect 0.5-2), horizontal
    flip p=0.5, colour jitter (0.8, 0.8, 0.8, 0.2) p=0.8 in random order, grayscale p=0.2,
    Gaussian blur (kernel :func:`blur_kernel_size`, about 10% of the crop; sigma 0.1-2 at 224 px,
    :func:`blur_sigma_range` with ``blur_sigma``: scaled by ``size / 224`` by default, or
    ``"fixed"``) with p=1 for view 0 and p=0.1 for view 1, solarize (threshold 0.5) p=0.2 on view 1 only; then normalise and permute to
    ``(B, C, T, H, W)``. Every parameter is drawn once per clip. ``blur_prob`` and
    ``solarize_prob`` hold one probability per view; view 1 always has its solarize step (view 0
    only when its probability is positive), so the random draws follow the paper's pipeline.
    """
    if view not in (0, 1):
        raise ValueError(f"CVRL has views 0 and 1, got view={view}")
    for name, pair in (("blur_prob", blur_prob), ("solarize_prob", solarize_prob)):
        if len(pair) != 2:
            raise ValueError(f"{name} must hold one probability per view, got {pair!r}")
    b, c, s, h = color_jitter
    steps = [
        RandomResizedCrop(size, scale=tuple(crop_scale), ratio=tuple(crop_ratio)),
        RandomHorizontalFlip(p=flip_prob),
        ColorJitter(b, c, s, h, p=color_jitter_prob),
        RandomGrayscale(p=grayscale_prob),
        GaussianBlur(blur_kernel_size(size), sigma=blur_sigma_range(size, blur_sigma), p=blur_prob[view]),
    ]
    if solarize_prob[view] > 0 or view == 1:
        steps.append(RandomSolarize(threshold=0.5, p=solarize_prob[view]))
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


def tclr_augment(
    size: int,
    crop_scale: tuple[float, float] = (0.36, 1.0),
    crop_ratio: tuple[float, float] = (1.0, 1.0),
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> Compose:
    """The authors' per-clip augmentation (``dl_tclr.py``), clip-consistent and batched.

    Square random crop resized to ``size``; contrast (0.75-1.25) p=0.25, hue (+-0.1) p=0.3,
    saturation (0.75-1.25) p=0.3, brightness (0.75-1.25) p=0.3, each drawn independently;
    grayscale p=0.175; channel drop p=0.125; horizontal flip p=0.5; erase a 9-18 px box (at 112
    px) p=0.5; normalise; permute. Differences from the authors: the crop area (not its side) is
    uniform, the gamma change after grayscale is left out, grayscale and channel drop are
    independent (the authors make them exclusive), frames are RGB (theirs BGR) and normalised.
    """
    return Compose([
        RandomResizedCrop(size, scale=crop_scale, ratio=crop_ratio),
        ColorJitter(contrast=0.25, p=0.25),
        ColorJitter(hue=0.1, p=0.3),
        ColorJitter(saturation=0.25, p=0.3),
        ColorJitter(brightness=0.25, p=0.3),
        RandomGrayscale(p=0.175),
        RandomChannelDrop(p=0.125),
        RandomHorizontalFlip(p=0.5),
        RandomErase(p=0.5),
        Normalize(mean, std),
        ToModelLayout(),
    ])


def dino_augment(
    size: int,
    crop_scale: Sequence[float],
    color_jitter_prob: float = 0.8,
    *,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> Compose:
    """A DINO / SVT-style view (LSS's global and local views): random resized crop of area
    ``crop_scale`` to ``size``, horizontal flip p=0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with
    ``color_jitter_prob``, grayscale p=0.2, normalise, permute; drawn once per clip."""
    return Compose([RandomResizedCrop(size, scale=tuple(crop_scale)), RandomHorizontalFlip(),
                    ColorJitter(0.4, 0.4, 0.2, 0.1, p=color_jitter_prob), RandomGrayscale(p=0.2),
                    Normalize(mean, std), ToModelLayout()])


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
