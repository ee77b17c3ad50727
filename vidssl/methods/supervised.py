"""Supervised training with action labels: the upper bound the demo compares SSL methods to.

Not self-supervised: it reads ``batch["label"]``. One random clip per video, light
clip-consistent augmentation (random resized crop, flip), encoder -> dropout -> linear ->
cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from vidssl.data.samplers import RandomClipSampler
from vidssl.data.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToModelLayout
from vidssl.methods import Pretext, register_method
from vidssl.models.heads import classifier_head


@dataclass
class SupervisedParams:
    num_classes: int = 10
    clip_len: int = 16
    stride: int = 2
    crop_size: int = 112
    min_crop_area: float = 0.3
    dropout: float = 0.5
    label_smoothing: float = 0.0


@register_method("supervised", SupervisedParams)
class Supervised(nn.Module):
    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "training accuracy on the action labels")

    def __init__(self, encoder: nn.Module, p: SupervisedParams):
        super().__init__()
        if p.num_classes < 2:
            raise ValueError(f"supervised needs num_classes >= 2, got {p.num_classes}")
        self.encoder = encoder
        self.params = p
        self.sampler = RandomClipSampler(num_frames=p.clip_len, stride=p.stride)
        pre = encoder.preprocess
        self.augment = Compose([RandomResizedCrop(p.crop_size, scale=(p.min_crop_area, 1.0)),
                                RandomHorizontalFlip(), Normalize(pre.mean, pre.std),
                                ToModelLayout()])
        self.head = classifier_head(encoder.num_features, p.num_classes, p.dropout)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        x = self.augment(batch["views"][0])
        logits = self.head(self.encoder.forward_features(x))
        label = batch["label"]
        loss = F.cross_entropy(logits, label, label_smoothing=self.params.label_smoothing)
        acc = (logits.argmax(1) == label).float().mean()
        return {"loss": loss, "acc": acc.detach(), "chance": acc.new_tensor(1.0 / logits.shape[1])}
