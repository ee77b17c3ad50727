"""CVRL: spatiotemporal contrastive video representation learning (Qian et al., CVPR 2021).

Per video, two clips (16 frames at stride 2) whose start interval follows the decreasing density
``P(t) ∝ 1 - (t/T)^p`` (:class:`~vidssl.data.samplers.CVRLIntervalSampler`). Each clip gets its
own clip-consistent augmentation (crop, flip, colour jitter, grayscale, blur, solarize; view 0
always blurred, view 1 rarely blurred and sometimes solarized), on the batch's device. Both views
go through the encoder as one batch (BatchNorm sees both views, as in the TF code), then the
projection MLP (3 x 2048 hidden, 128 out), then NT-Xent with ``tau = 0.1`` and every other clip
of the global batch as a negative.

Reference code: ``tensorflow/models`` ``official/projects/video_ssl`` (losses/losses.py,
modeling/video_ssl_model.py, configs/video_ssl.py). See ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vidssl.data.samplers import CVRLIntervalSampler
from vidssl.data.transforms import BLUR_SIGMA_MODES, Compose, cvrl_augment
from vidssl.losses import InfoNCELoss
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, register_method
from vidssl.methods.common import norm_kwargs
from vidssl.models.heads import CVRLProjectionHead

__all__ = ["CVRLParams", "CVRL", "cvrl_view_augment"]


@dataclass
class CVRLParams:
    """CVRL's parameters (defaults: the paper / TF reference code; small configs shrink sizes).

    Sampling:
        clip_len: frames per clip (16). stride: step between clip frames (2).
        interval_power: ``p`` of the interval density ``∝ 1 - (t/T)^p`` (1: linear decrease).
        short_video: ``"pad"`` | ``"loop"`` (see ``docs/samplers.md``).
    Augmentation (view 0, view 1 where a pair is given):
        crop_size: output side (224 for R3D-50 on Kinetics; 112 for 112-px models).
        crop_scale, crop_ratio: random resized crop area fraction (0.3-1) and aspect (0.5-2).
        flip_prob: horizontal flip (0.5).
        color_jitter: brightness, contrast, saturation, hue strengths (0.8, 0.8, 0.8, 0.2).
        color_jitter_prob: probability of jittering a clip (0.8).
        grayscale_prob: (0.2).
        blur_prob: Gaussian blur probability per view (1.0, 0.1); kernel ~10% of the crop.
        blur_sigma: ``"scaled"`` (default: sigma range (0.1, 2.0) x ``crop_size / 224``, the
            same blur relative to the frame as the authors' 224-px setting) or ``"fixed"``
            ((0.1, 2.0) at every crop size, as the TF code's ``random_blur`` is written).
        solarize_prob: solarize probability per view (0.0, 0.2).
    Head and loss:
        hidden_dim, num_hidden_layers, proj_dim: projection MLP (2048, 3, 128).
        temperature: NT-Xent ``tau`` (0.1).
        loss_reduction: ``"sum"`` of the two directional losses (CVRL's TF code) or ``"mean"``.
        gather_negatives: under DDP, negatives from every rank (True).
    """

    clip_len: int = 16
    stride: int = 2
    interval_power: float = 1.0
    short_video: str = "pad"
    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (0.5, 2.0)
    flip_prob: float = 0.5
    color_jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2)
    color_jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: tuple[float, float] = (1.0, 0.1)
    solarize_prob: tuple[float, float] = (0.0, 0.2)
    blur_sigma: str = "scaled"
    hidden_dim: int = 2048
    num_hidden_layers: int = 3
    proj_dim: int = 128
    temperature: float = 0.1
    loss_reduction: str = "sum"
    gather_negatives: bool = True

    def __post_init__(self) -> None:
        check_ints("cvrl", self, {"crop_size": 1, "hidden_dim": 1, "num_hidden_layers": 0, "proj_dim": 1})
        check_choice("cvrl", "blur_sigma", self.blur_sigma, BLUR_SIGMA_MODES)
        with building_parts("cvrl"):
            build_sampler(self)
            for view in (0, 1):
                cvrl_view_augment(self, view)
            InfoNCELoss(self.temperature, reduction=self.loss_reduction)


def build_sampler(p: CVRLParams) -> CVRLIntervalSampler:
    """The clip-pair sampler; its argument names are mapped so errors name our fields."""
    if isinstance(p.clip_len, bool) or not isinstance(p.clip_len, int) or p.clip_len < 1:
        raise ValueError(f"clip_len must be an int >= 1, got {p.clip_len!r}")
    return CVRLIntervalSampler(num_frames=p.clip_len, stride=p.stride, power=p.interval_power,
                               short_video=p.short_video)


def cvrl_view_augment(
    p: CVRLParams,
    view: int,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> Compose:
    """View ``view``'s clip-consistent pipeline: uint8 ``(B, T, C, H, W)`` -> float ``(B, C, T, S, S)``:
    :func:`vidssl.data.transforms.cvrl_augment` with ``p``'s sizes and probabilities (the
    defaults are the paper's). ``mean``/``std`` default to the Kinetics statistics."""
    norm = {} if mean is None else {"mean": mean, "std": std}
    return cvrl_augment(p.crop_size, view, crop_scale=p.crop_scale, crop_ratio=p.crop_ratio,
                        flip_prob=p.flip_prob, color_jitter=p.color_jitter,
                        color_jitter_prob=p.color_jitter_prob, grayscale_prob=p.grayscale_prob,
                        blur_prob=p.blur_prob, solarize_prob=p.solarize_prob, blur_sigma=p.blur_sigma, **norm)


@register_method("cvrl", CVRLParams)
class CVRL(nn.Module):
    """CVRL around any encoder of the vidssl protocol (``forward_features``, ``preprocess``).

    ``forward(batch)``: ``batch["views"]`` = ``[clip0, clip1]`` uint8 ``(B, T, C, H, W)`` on the
    training device. Returns ``loss`` (NT-Xent), ``acc`` (top-1 of the positive among the
    ``2 B_global - 1`` candidates, both directions), ``pos_sim``/``neg_sim`` (mean cosine of
    positive/negative pairs) and ``interval`` (mean start interval in frames, when the sampler
    target is in the batch).
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "instance accuracy (the positive clip ranks first among the batch)")

    def __init__(self, encoder: nn.Module, params: CVRLParams):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        self.augment = nn.ModuleList([cvrl_view_augment(params, v, **norm_kwargs(encoder)) for v in (0, 1)])
        self.head = CVRLProjectionHead(encoder.num_features, params.hidden_dim, params.proj_dim,
                                       params.num_hidden_layers)
        self.criterion = InfoNCELoss(params.temperature, gather_distributed=params.gather_negatives,
                                     reduction=params.loss_reduction)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        if len(views) != 2:
            raise ValueError(f"CVRL expects 2 views ({', '.join(self.sampler.view_names)}), got {len(views)}")
        with torch.no_grad():
            x = torch.cat([self.augment[0](views[0]), self.augment[1](views[1])])  # (2B, C, T, S, S)
        z = self.head(self.encoder.forward_features(x))  # (2B, proj_dim)
        z0, z1 = z.chunk(2)
        loss, stats = self.criterion(z0, z1, return_stats=True)
        out = {"loss": loss, **stats}
        interval = batch.get("targets", {}).get("interval")
        if isinstance(interval, torch.Tensor):
            out["interval"] = interval.float().mean()
        return out
