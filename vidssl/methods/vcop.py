"""VCOP: video clip order prediction (Xu et al., CVPR 2019), with Shuffle & Learn as an option.

``tuple_of: clips`` (VCOP, the default): per video, ``n = 3`` clips of 16 consecutive frames with
8 frames between clips (:class:`~vidssl.data.samplers.VCOPSampler`), shown in one of the ``n!``
orders. Each clip gets its own random crop (the authors reseed the crop per clip), the shared
encoder pools each clip to ``f_k``, and the order head takes every pair ``i < j``:
``h_ij = ReLU(W [f_i; f_j])`` (512 wide), concatenates the ``n (n - 1) / 2`` pair features,
applies dropout 0.5 and a linear layer to ``n!`` logits; cross-entropy on the order id.

``tuple_of: frames`` (Shuffle & Learn, Misra et al., ECCV 2016): per video, a tuple of 3 single
frames that is in temporal order or has its middle frame replaced by one from outside
(:class:`~vidssl.data.samplers.ShuffleLearnSampler`); the encoder sees each frame as a one-frame
clip, the head concatenates the frame features and classifies in-order vs not (2 logits).

Reference code: ``xudejing/video-clip-order-prediction`` (models/vcopn.py, train_vcop.py,
datasets/ucf101.py). See ``docs/methods.md``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.samplers import ShuffleLearnSampler, VCOPSampler
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, register_method
from vidssl.methods.common import crop_flip_augment, encode_elements

__all__ = ["VCOPParams", "VCOP", "OrderHead", "TUPLES"]

TUPLES: tuple[str, ...] = ("clips", "frames")


@dataclass
class VCOPParams:
    """VCOP's parameters (defaults: the paper and the authors' code, UCF101 at 112 px).

    Tuple:
        tuple_of: ``"clips"`` (VCOP) or ``"frames"`` (Shuffle & Learn).
        clip_len, interval, num_clips: VCOP's clips (16 frames, 8-frame gaps, 3 clips: 6 orders).
        tuple_len, min_gap, max_gap, positive_prob: Shuffle & Learn's frame tuples
            (3 frames; the gap bounds are marked *confirm* in ``docs/samplers.md``).
        short_video: ``"pad"`` | ``"loop"``.
    Augmentation (uint8 frames in, per tuple element):
        crop_size: output side (112).
        crop_scale, crop_ratio: random resized crop. The authors resize to 128 x 171 and take a
            random 112 x 112 crop (a translation, 0.57 of the area); ``(0.57, 0.57)`` with ratio
            1 reproduces that on 4:3 frames.
        per_clip_crop: each element gets its own crop (the authors, True) or one crop per tuple.
        flip_prob: horizontal flip (0: the authors do not flip).
    Head:
        hidden_dim: width of each pair feature (512).
        dropout: before the classifier (0.5).
    """

    tuple_of: str = "clips"
    clip_len: int = 16
    interval: int = 8
    num_clips: int = 3
    tuple_len: int = 3
    min_gap: int = 4
    max_gap: int = 15
    positive_prob: float = 0.5
    short_video: str = "pad"
    crop_size: int = 112
    crop_scale: tuple[float, float] = (0.57, 0.57)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    per_clip_crop: bool = True
    flip_prob: float = 0.0
    hidden_dim: int = 512
    dropout: float = 0.5

    def __post_init__(self) -> None:
        check_ints("vcop", self, {"crop_size": 1, "hidden_dim": 1})
        check_choice("vcop", "tuple_of", self.tuple_of, TUPLES)
        with building_parts("vcop"):
            build_sampler(self)
            crop_flip_augment(self)
            nn.Dropout(self.dropout)


def build_sampler(p: VCOPParams) -> VCOPSampler | ShuffleLearnSampler:
    if p.tuple_of == "clips":
        return VCOPSampler(clip_len=p.clip_len, interval=p.interval, num_clips=p.num_clips,
                           short_video=p.short_video)
    return ShuffleLearnSampler(tuple_len=p.tuple_len, min_gap=p.min_gap, max_gap=p.max_gap,
                               positive_prob=p.positive_prob, short_video=p.short_video)


class OrderHead(nn.Module):
    """VCOP's pairwise order classifier (``fusion="pairwise"``) or Shuffle & Learn's concatenation
    (``fusion="concat"``).

    Shape:
        - input: ``(B, n, D)``, the pooled features of the ``n`` tuple elements in presented order.
        - output: ``(B, num_classes)`` logits.
    """

    def __init__(self, in_dim: int, n: int, num_classes: int, hidden_dim: int = 512,
                 dropout: float = 0.5, fusion: str = "pairwise"):
        super().__init__()
        if fusion not in ("pairwise", "concat"):
            raise ValueError(f"fusion must be 'pairwise' or 'concat', got {fusion!r}")
        self.fusion, self.n = fusion, n
        self.pairs = list(itertools.combinations(range(n), 2))
        if fusion == "pairwise":
            self.pair_fc = nn.Linear(2 * in_dim, hidden_dim)
            width = hidden_dim * len(self.pairs)
        else:
            self.pair_fc = None
            width = in_dim * n
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.ndim != 3 or f.shape[1] != self.n:
            raise ValueError(f"expected (B, {self.n}, D) element features, got {tuple(f.shape)}")
        if self.pair_fc is None:
            x = f.flatten(1)
        else:
            i = torch.tensor([a for a, _ in self.pairs], device=f.device)
            j = torch.tensor([b for _, b in self.pairs], device=f.device)
            x = F.relu(self.pair_fc(torch.cat([f[:, i], f[:, j]], dim=-1))).flatten(1)
        return self.fc(self.dropout(x))


@register_method("vcop", VCOPParams)
class VCOP(nn.Module):
    """VCOP / Shuffle & Learn around an encoder of the vidssl protocol (``forward_features``).

    ``forward(batch)``: ``batch["views"]`` = the sampler's ``n`` elements in presented order,
    uint8 ``(B, T, C, H, W)``; ``batch["targets"]["order"]`` (VCOP) or ``["in_order"]`` (Shuffle &
    Learn), ``int64 (B,)``. All ``n B`` elements go through the encoder in one call. Returns
    ``loss`` (cross-entropy) and ``acc`` (top-1 of the order / in-order classifier).
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "order accuracy")

    def __init__(self, encoder: nn.Module, params: VCOPParams):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        self.augment = crop_flip_augment(params, encoder)
        clips = params.tuple_of == "clips"
        self.target_key = "order" if clips else "in_order"
        n = len(self.sampler.view_lengths)
        self.head = OrderHead(encoder.num_features, n, self.sampler.num_classes if clips else 2,
                              params.hidden_dim, params.dropout, "pairwise" if clips else "concat")

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        n = self.head.n
        if len(views) != n:
            raise ValueError(f"VCOP expects {n} views ({', '.join(self.sampler.view_names)}), got {len(views)}")
        target = batch.get("targets", {}).get(self.target_key)
        if target is None:
            raise ValueError(f"VCOP needs batch['targets'][{self.target_key!r}] from its sampler")
        f = encode_elements(self.encoder, self.augment, views, per_element=self.params.per_clip_crop)
        logits = self.head(f)
        target = target.to(logits.device).long()
        loss = F.cross_entropy(logits, target)
        return {"loss": loss, "acc": (logits.argmax(1) == target).float().mean().detach(),
                "chance": loss.new_tensor(1.0 / logits.shape[1]).detach()}
