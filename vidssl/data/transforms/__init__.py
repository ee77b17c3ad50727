"""Video transforms: batched, clip-consistent augmentations and the per-sample ``ResizeClip``.

Batches are uint8 ``(B, T, C, H, W)``; pipelines end in float ``(B, C, T, H, W)``. See
``docs/transforms.md``.
"""

from vidssl.data.transforms import functional
from vidssl.data.transforms.clip import ResizeClip, clip_transform
from vidssl.data.transforms.photometric import (ColorJitter, GaussianBlur, RandomChannelDrop, RandomGrayscale,
                                                RandomSolarize)
from vidssl.data.transforms.presets import (BLUR_SIGMA_MODES, blur_kernel_size, blur_sigma_range, cvrl_augment,
                                            dino_augment, dpc_augment, eval_transform, tclr_augment)
from vidssl.data.transforms.spatial import (CenterCrop, MultiScaleCrop, RandomErase, RandomHorizontalFlip,
                                           RandomResizedCrop, Resize)
from vidssl.data.transforms.video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    Compose,
    Normalize,
    ToFloat,
    ToModelLayout,
    VideoTransform,
)

__all__ = [
    "functional",
    "ResizeClip",
    "clip_transform",
    "VideoTransform",
    "Compose",
    "ToFloat",
    "Resize",
    "CenterCrop",
    "RandomResizedCrop",
    "MultiScaleCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianBlur",
    "RandomSolarize",
    "RandomChannelDrop",
    "RandomErase",
    "Normalize",
    "ToModelLayout",
    "cvrl_augment",
    "dpc_augment",
    "tclr_augment",
    "dino_augment",
    "eval_transform",
    "blur_kernel_size",
    "blur_sigma_range",
    "BLUR_SIGMA_MODES",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
