"""DPC: dense predictive coding (Han et al., ICCVW 2019).

Per video, ``N = 8`` contiguous blocks of 5 frames at frame step 3
(:class:`~vidssl.data.samplers.DPCBlockSampler`), augmented as one sequence: crop and flip
shared, colour jitter and grayscale drawn per frame (:func:`~vidssl.data.transforms.dpc_augment`).
The encoder maps every block to a feature map, averaged over time: ``z_t`` is ``D x H' x W'``,
taken **before the encoder's final ReLU** where the encoder can give it (``targets:
pre_activation``, the authors' choice: their 2D3D-ResNet ends without that ReLU and they score
against its output; see below). A one-layer ConvGRU with 1 x 1 kernels aggregates
``ReLU(z_1 .. z_C)`` (``C = N - K`` context blocks) into a context map; a predictor (1 x 1
conv, ReLU, 1 x 1 conv) predicts ``z_{C+1}``, whose ReLU is fed back to the GRU to predict
``z_{C+2}`` and so on for ``K = 3`` steps. The dense contrastive loss
(:class:`~vidssl.losses.dpc.DenseContrastiveLoss`) matches each prediction to the true ``z`` at
the same video, step and position against every other video, step and position (gathered over
ranks); raw dot products by default.

``targets``: ``"pre_activation"`` (default, the authors') asks the encoder for
``forward_feature_map(x, pre_activation=True)`` when it declares ``has_pre_activation_map``
(``r2d3d_*``, the R3D / MC3 / R(2+1)D family, ``r3d_50*``); other encoders give their map as it is
(S3D's map is post-ReLU with no single pre-activation; the ViT families' tokens are not
rectified anyway), recorded in ``DPC.target_kind``. ``"feature_map"``: the encoder's default map,
vidssl's behaviour before issue 21 (post-ReLU targets for the R3D family; different numbers;
``r2d3d_*`` with ``use_final_relu=False`` gives its pre-activation map either way).

``curriculum`` makes the task harder during training: entries ``[start_fraction, pred_steps]``
switch to predicting more steps from fewer context blocks (the sequence length is fixed).

Reference code: ``TengdaHan/DPC`` (dpc/model_3d.py, backbone/convrnn.py, dpc/main.py). See
``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from vidssl.data.samplers import DPCBlockSampler
from vidssl.data.transforms import dpc_augment
from vidssl.errors import ConfigError
from vidssl.losses.dpc import SIMILARITIES, DenseContrastiveLoss
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, param_error, register_method
from vidssl.methods.common import norm_kwargs
from vidssl.models.heads import ConvGRU, dense_predictor

__all__ = ["DPCParams", "DPC", "TARGETS"]

#: What the predictions are scored against: the map before the encoder's final ReLU (DPC) or
#: the encoder's default map (vidssl before issue 21).
TARGETS: tuple[str, ...] = ("pre_activation", "feature_map")


@dataclass
class DPCParams:
    """DPC's parameters (defaults: the paper and the authors' code, 128-px Kinetics/UCF101).

    Sequence: num_blocks (8), block_len (5), frame_step (3), short_video (``"pad"``).
    Prediction: pred_steps ``K`` (3; context = ``num_blocks - K``); curriculum: list of
        ``[start_fraction, pred_steps]`` (empty: fixed ``K``).
    Augmentation: crop_size (128); crop and flip per sequence, colour per frame.
    Aggregator / predictor: gru_kernel (1), gru_dropout (0.1) on the GRU output.
    Loss: similarity ``"dot"`` (DPC) or ``"cosine"`` with ``temperature``; gather_negatives;
        targets ``"pre_activation"`` (DPC: the encoder's map before its final ReLU) or
        ``"feature_map"`` (the encoder's default map; vidssl before issue 21).
    """

    num_blocks: int = 8
    block_len: int = 5
    frame_step: int = 3
    short_video: str = "pad"
    pred_steps: int = 3
    curriculum: list[list[float]] = field(default_factory=list)
    crop_size: int = 128
    gru_kernel: int = 1
    gru_dropout: float = 0.1
    similarity: str = "dot"
    temperature: float = 0.07
    gather_negatives: bool = True
    targets: str = "pre_activation"

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return param_error("dpc", key, msg)

        check_ints("dpc", self, {"crop_size": 1, "pred_steps": 1, "gru_kernel": 1})
        if self.gru_kernel % 2 == 0:
            raise bad("gru_kernel", f"must be odd (same-size padding), got {self.gru_kernel}")
        check_choice("dpc", "similarity", self.similarity, SIMILARITIES)
        check_choice("dpc", "targets", self.targets, TARGETS)
        steps = [self.pred_steps] + [int(s) for _, s in self.curriculum]
        for i, entry in enumerate(self.curriculum):
            if len(entry) != 2 or not 0.0 <= float(entry[0]) <= 1.0 or int(entry[1]) != entry[1]:
                raise bad(f"curriculum[{i}]", f"must be [start_fraction in 0..1, pred_steps], got {list(entry)}")
        if max(steps) >= self.num_blocks or min(steps) < 1:
            raise bad("pred_steps", f"every prediction length (here {steps}) must be in 1..num_blocks-1 "
                                    f"= 1..{self.num_blocks - 1}, leaving at least one context block")
        with building_parts("dpc"):
            build_sampler(self)
            DenseContrastiveLoss(self.similarity, self.temperature)
            nn.Dropout(self.gru_dropout)

    def pred_steps_at(self, fraction: float) -> int:
        """Prediction length at ``fraction`` of training under the curriculum."""
        steps = self.pred_steps
        for start, k in sorted((float(s), int(k)) for s, k in self.curriculum):
            if fraction >= start:
                steps = k
        return steps


def build_sampler(p: DPCParams) -> DPCBlockSampler:
    return DPCBlockSampler(num_blocks=p.num_blocks, block_len=p.block_len, frame_step=p.frame_step,
                           short_video=p.short_video)


@register_method("dpc", DPCParams)
class DPC(nn.Module):
    """DPC around an encoder of the vidssl protocol (``forward_feature_map``, ``preprocess``).

    ``forward(batch)``: ``batch["views"]`` = ``[blocks]`` uint8 ``(B, N L, C, H, W)``. Returns
    ``loss`` and the loss's ``acc``, ``acc_easy``, ``acc_temporal``, plus ``pred_steps``.
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "top-1 of the predicted future blocks among every block and position")

    def __init__(self, encoder: nn.Module, params: DPCParams):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        self.augment = dpc_augment(params.crop_size, **norm_kwargs(encoder))
        d = encoder.num_features
        self.agg = ConvGRU(d, d, params.gru_kernel, params.gru_dropout)
        self.head = dense_predictor(d)
        self.criterion = DenseContrastiveLoss(params.similarity, params.temperature, params.gather_negatives)
        self.pred_steps = params.pred_steps
        pre = params.targets == "pre_activation" and bool(getattr(encoder, "has_pre_activation_map", False))
        #: what the targets are here: "pre_activation" or "feature_map" (an encoder without a
        #: pre-activation map gives its map under targets=pre_activation)
        self.target_kind = "pre_activation" if pre else "feature_map"

    def set_step(self, step: int, total_steps: int) -> None:
        """Curriculum: the prediction length for step ``step`` (0-based) of ``total_steps``."""
        if self.params.curriculum and total_steps > 0:
            self.pred_steps = self.params.pred_steps_at(step / total_steps)

    def block_features(self, seq: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, N L, C, H, W)`` -> ``(B, N, D, H', W')`` (encoder map averaged over time;
        pre-activation when ``target_kind`` says so)."""
        p = self.params
        b = seq.shape[0]
        with torch.no_grad():
            x = self.augment(seq)                                            # (B, C, N L, S, S)
        c, s1, s2 = x.shape[1], x.shape[3], x.shape[4]
        x = x.view(b, c, p.num_blocks, p.block_len, s1, s2).transpose(1, 2).flatten(0, 1)  # (B N, C, L, S, S)
        if self.target_kind == "pre_activation":
            fmap = self.encoder.forward_feature_map(x, pre_activation=True)
        else:
            fmap = self.encoder.forward_feature_map(x)
        fmap = fmap.mean(dim=2)                                              # (B N, D, H', W')
        return fmap.view(b, p.num_blocks, *fmap.shape[1:])

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        p = self.params
        if len(views) != 1 or views[0].shape[1] != p.num_blocks * p.block_len:
            raise ValueError(f"DPC expects one view of {p.num_blocks} x {p.block_len} frames, got "
                             f"{[tuple(v.shape) for v in views]}")
        z = self.block_features(views[0])
        k = self.pred_steps
        context = torch.relu(z[:, : p.num_blocks - k])
        _, hidden = self.agg(context)
        preds = []
        for step in range(k):
            pred = self.head(hidden)
            preds.append(pred)
            if step + 1 < k:
                _, hidden = self.agg(torch.relu(pred).unsqueeze(1), hidden)
        loss, stats = self.criterion(torch.stack(preds, 1), z[:, p.num_blocks - k:], return_stats=True)
        return {"loss": loss, **stats, "pred_steps": torch.tensor(float(k))}
