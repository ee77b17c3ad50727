"""O3N: odd-one-out networks (Fernando et al., CVPR 2017), the clip variant.

Per video, a question of ``N + 1 = 6`` elements of ``W`` frames
(:class:`~vidssl.data.samplers.OddOneOutSampler`): each element is ``W`` ordered frames picked
inside a window of ``1.5 W`` consecutive frames (constrained-consecutive sampling), except the
odd one, whose frames are permuted. The shared 3D encoder pools each element to ``v_k``; the
per-element layer and the sum-of-differences fusion ``sum_{i<j} (v_j - v_i)`` give one vector per question, a linear
layer gives ``N + 1`` logits, softmax cross-entropy on the odd element's position.

The paper works on frames/dynamic images with an AlexNet per element; the clip variant (a 3D
encoder per ``W``-frame element) and the values of ``W`` and the window marked *confirm* in
``../shared/design/METHODS.md`` are named parameters here. See ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.samplers import OddOneOutSampler
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, register_method
from vidssl.methods.common import crop_flip_augment, encode_elements

__all__ = ["O3NParams", "O3N", "SumOfDifferencesHead", "FUSIONS"]

FUSIONS: tuple[str, ...] = ("sum_of_differences", "concat")


@dataclass
class O3NParams:
    """O3N's parameters.

    Question:
        num_elements: ``N + 1`` (6). element_len: ``W`` frames per element (8; confirm).
        window_scale: sampling window as a multiple of ``W`` (1.5; confirm).
        short_video: ``"pad"`` | ``"loop"``.
    Augmentation (one draw per question unless ``per_element_crop``):
        crop_size (112), crop_scale (0.5-1), crop_ratio (3/4-4/3), flip_prob (0.5).
    Head:
        element_hidden_dim: width of the per-element layer ``ReLU(Linear(D, H))`` applied before
            the fusion (512; the paper's branches end in fully connected layers before fusing;
            0 fuses the pooled features directly). Without it the fusion is linear in the
            features and cannot tell "a large disorder at position 1" from "a small one at
            position 3"; measured on time features in the tests.
        fusion: ``"sum_of_differences"`` (the paper) or ``"concat"`` (an ablation: the element
            features side by side).
        dropout: before the classifier (0.5; confirm).
    """

    num_elements: int = 6
    element_len: int = 8
    window_scale: float = 1.5
    short_video: str = "pad"
    crop_size: int = 112
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    per_element_crop: bool = False
    element_hidden_dim: int = 512
    fusion: str = "sum_of_differences"
    dropout: float = 0.5

    def __post_init__(self) -> None:
        check_ints("o3n", self, {"crop_size": 1, "element_hidden_dim": 0})
        check_choice("o3n", "fusion", self.fusion, FUSIONS)
        with building_parts("o3n"):
            build_sampler(self)
            crop_flip_augment(self)
            nn.Dropout(self.dropout)


def build_sampler(p: O3NParams) -> OddOneOutSampler:
    return OddOneOutSampler(num_elements=p.num_elements, element_len=p.element_len,
                            window_scale=p.window_scale, short_video=p.short_video)


class SumOfDifferencesHead(nn.Module):
    """``(B, n, D)`` element features -> ``(B, n)`` logits over the odd element's position.

    Each element first goes through ``v_k = ReLU(Linear(D, H)(f_k))`` when ``hidden_dim > 0``
    (``v_k = f_k`` otherwise). ``fusion="sum_of_differences"``: ``sum_{i<j} (v_j - v_i) =
    sum_k (2k - n + 1) v_k``, then dropout and ``Linear(H, n)``. ``fusion="concat"``:
    ``[v_0; ...; v_{n-1}]``, dropout, ``Linear(n H, n)``.
    """

    def __init__(self, in_dim: int, n: int, fusion: str = "sum_of_differences", dropout: float = 0.5,
                 hidden_dim: int = 0):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.n, self.fusion = n, fusion
        self.register_buffer("coef", torch.arange(n, dtype=torch.float32) * 2 - (n - 1), persistent=False)
        self.element = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU()) if hidden_dim else nn.Identity()
        width = hidden_dim or in_dim
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width if fusion == "sum_of_differences" else n * width, n)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.ndim != 3 or v.shape[1] != self.n:
            raise ValueError(f"expected (B, {self.n}, D) element features, got {tuple(v.shape)}")
        v = self.element(v)
        if self.fusion == "sum_of_differences":
            x = torch.einsum("k,bkd->bd", self.coef.to(v.dtype), v)
        else:
            x = v.flatten(1)
        return self.fc(self.dropout(x))


@register_method("o3n", O3NParams)
class O3N(nn.Module):
    """O3N around an encoder of the vidssl protocol (``forward_features``, ``preprocess``).

    ``forward(batch)``: ``batch["views"]`` = the question's ``N + 1`` elements, uint8
    ``(B, W, C, H, W)``; ``batch["targets"]["odd"]`` ``int64 (B,)``. Returns ``loss``
    (cross-entropy over positions) and ``acc``.
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "odd-one-out accuracy")

    def __init__(self, encoder: nn.Module, params: O3NParams):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        self.augment = crop_flip_augment(params, encoder)
        self.target_key = "odd"
        self.head = SumOfDifferencesHead(encoder.num_features, params.num_elements, params.fusion,
                                         params.dropout, params.element_hidden_dim)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        if len(views) != self.head.n:
            raise ValueError(f"O3N expects {self.head.n} views ({', '.join(self.sampler.view_names)}), got {len(views)}")
        odd = batch.get("targets", {}).get(self.target_key)
        if odd is None:
            raise ValueError("O3N needs batch['targets']['odd'] from its sampler")
        v = encode_elements(self.encoder, self.augment, views, per_element=self.params.per_element_crop)
        logits = self.head(v)
        odd = odd.to(logits.device).long()
        loss = F.cross_entropy(logits, odd)
        return {"loss": loss, "acc": (logits.argmax(1) == odd).float().mean().detach(),
                "chance": loss.new_tensor(1.0 / logits.shape[1]).detach()}
