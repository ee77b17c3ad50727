"""TCLR: temporal contrastive learning for video representation (Dave et al., CVIU 2022).

Per video, one **global** clip (16 frames at stride 4, spanning 64 frames) and ``K = 4``
**local** clips (16 consecutive frames each, local clip ``k`` starting at ``16 k`` inside the
global span) from :class:`~vidssl.data.samplers.TCLRSampler` (views ``global, local0..local3``).
Every clip gets two independent clip-consistent augmentation draws, on the batch's device.

The encoder (R3D-18 whose last stage trades its temporal stride for dilation, so a 16-frame clip
keeps ``K = 4`` temporal positions) gives a feature map per clip; it is pooled over space, then

- pooled over time -> the clip embedding (global and local clips);
- kept per temporal position -> ``K`` slice embeddings of the global clip,

all through one shared projection head (Linear D->D, BN, ReLU, Linear D->128 no bias, BN,
L2-norm), called once per slice index as the authors do (``slice_bn="per_slice"``: each slice
is normalised on its own batch statistics) or on all slices at once (``"shared"``). Losses (:mod:`vidssl.losses.tclr`, ``tau = 0.1``):

- IC: NT-Xent on the two draws of the global clip, plus NT-Xent on pairs of local views of one
  video (all pairs in the authors' code), negatives from other videos, gathered over ranks;
- LL: per video, local clip ``k`` vs the other local clips of the same video;
- GL: per video and for each of the 2 x 2 (global draw, local draw) combinations, the ``K x K``
  slice/local-clip similarity trained toward its diagonal on rows and columns.

``loss = ic_weight * (c_icg IC_global + c_icl IC_local) + ll_weight * c_ll LL + gl_weight * c_gl GL``
where every term is a mean over its anchors and the ``c`` are ``loss_weights``: ``"paper"`` (the
default) the authors' effective factors (:func:`~vidssl.losses.tclr.authors_loss_scale`:
``IC_global + 14 IC_local + B LL + 16 GL`` for ``K = 4`` and a global batch of ``B`` videos),
``"mean"`` all 1 (the paper's written ``IC + LL + GL`` of means).

Reference code: ``DAVEISHAN/TCLR`` ``tclr_pretraining/`` (train_gen_all_step.py, mlp.py,
dl_tclr.py, contrastive_loss/). See ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from vidssl.data.samplers import TCLRSampler
from vidssl.data.transforms import cvrl_augment, tclr_augment
from vidssl.errors import ConfigError
from vidssl.losses.tclr import LOCAL_PAIRS, GlobalLocalLoss, LocalLocalLoss, TCLRInstanceLoss, authors_loss_scale
from vidssl.methods import Pretext, building_parts, check_choice, check_ints, check_range, param_error, register_method
from vidssl.methods.common import norm_kwargs
from vidssl.models.heads import TCLRProjectionHead
from vidssl.runtime import dist

__all__ = ["TCLRParams", "TCLR", "temporal_slices"]

AUGMENTS: tuple[str, ...] = ("tclr", "cvrl")
LOSS_WEIGHTS: tuple[str, ...] = ("paper", "mean")
SLICE_BN: tuple[str, ...] = ("per_slice", "shared")


@dataclass
class TCLRParams:
    """TCLR's parameters (defaults: the paper and the authors' code, UCF101 at 112 px).

    Sampling:
        num_frames: frames of the global clip (16). global_stride: its frame step (4).
        num_local: local clips ``K`` (4); the encoder's temporal output is pooled to ``K``
            slices. local_len: frames per local clip, ``None`` = ``num_frames * global_stride /
            num_local`` (16). short_video: ``"pad"`` | ``"loop"``.
    Augmentation (two independent draws per clip):
        crop_size: output side (112).
        augment: ``"tclr"`` (the authors' recipe, :func:`tclr_augment`) or ``"cvrl"`` (CVRL's
            view-0 / view-1 pipelines for draw 0 / draw 1).
        crop_scale, crop_ratio: the ``"tclr"`` crop: a square (ratio 1) whose side is 0.6-1 of
            the short side, i.e. area (0.36, 1) of a square frame; use (0.27, 0.75) for 4:3
            frames such as UCF101's 320x240 to match the authors' crop.
    Head and losses:
        head_hidden_dim: hidden width, ``None`` = the encoder's width (512 for R3D-18).
        proj_dim: embedding width (128).
        temperature: ``tau`` of all three losses (0.1).
        ic_local_pairs: ``"all"`` (authors' code: any two local views of a video are IC
            positives), ``"same_clip"`` or ``"none"``.
        ic_weight, ll_weight, gl_weight: loss weights (1, 1, 1), applied on top of loss_weights.
        loss_weights: ``"paper"`` (default: the authors' code's effective scale of each term,
            ``IC_global + 14 IC_local + B LL + 16 GL`` for ``K = 4``, ``B`` the global batch:
            :func:`~vidssl.losses.tclr.authors_loss_scale`) or ``"mean"`` (every term a mean,
            ``IC + LL + GL``: the balance does not depend on the batch size).
        slice_bn: ``"per_slice"`` (default, the authors' ``mlp.py``: the head runs once per
            temporal slice index, so its BatchNorms normalise each slice on its own batch
            statistics, same weights and running statistics) or ``"shared"`` (one head call on
            all slices: statistics pooled over slices).
        gather_negatives: under DDP, IC negatives from every rank (True).
    """

    num_frames: int = 16
    global_stride: int = 4
    num_local: int = 4
    local_len: Optional[int] = None
    short_video: str = "pad"
    crop_size: int = 112
    augment: str = "tclr"
    crop_scale: tuple[float, float] = (0.36, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    head_hidden_dim: Optional[int] = None
    proj_dim: int = 128
    temperature: float = 0.1
    ic_local_pairs: str = "all"
    ic_weight: float = 1.0
    ll_weight: float = 1.0
    gl_weight: float = 1.0
    loss_weights: str = "paper"
    slice_bn: str = "per_slice"
    gather_negatives: bool = True

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return param_error("tclr", key, msg)

        check_ints("tclr", self, {"crop_size": 1, "proj_dim": 1}
                   | ({} if self.head_hidden_dim is None else {"head_hidden_dim": 1}))
        if self.num_local < 2:
            raise bad("num_local", f"the local-local and global-local losses need >= 2 local clips, got {self.num_local}")
        check_choice("tclr", "augment", self.augment, AUGMENTS)
        check_choice("tclr", "ic_local_pairs", self.ic_local_pairs, LOCAL_PAIRS)
        check_choice("tclr", "loss_weights", self.loss_weights, LOSS_WEIGHTS)
        check_choice("tclr", "slice_bn", self.slice_bn, SLICE_BN)
        check_range("tclr", self, {"ic_weight": ">= 0", "ll_weight": ">= 0", "gl_weight": ">= 0"})
        with building_parts("tclr"):
            build_sampler(self)
            tclr_augment(self.crop_size, tuple(self.crop_scale), tuple(self.crop_ratio))
            TCLRInstanceLoss(self.temperature)


def build_sampler(p: TCLRParams) -> TCLRSampler:
    return TCLRSampler(num_frames=p.num_frames, global_stride=p.global_stride, num_local=p.num_local,
                       local_len=p.local_len, short_video=p.short_video)


def temporal_slices(feature_map: torch.Tensor, num_slices: int) -> torch.Tensor:
    """``(B, D, T', H', W')`` -> ``(B, num_slices, D)``: spatial mean, then ``T'`` averaged in
    ``num_slices`` equal groups (identity when ``T' == num_slices``, the TCLR backbone)."""
    if feature_map.ndim != 5:
        raise ValueError(f"forward_feature_map must return (B, D, T, H, W), got {tuple(feature_map.shape)}")
    b, d, t = feature_map.shape[:3]
    if t % num_slices:
        raise ValueError(
            f"the encoder's feature map has {t} temporal positions, which cannot be split into "
            f"{num_slices} slices; TCLR needs a multiple of num_local (for R3D use "
            f"temporal_dilation_last_stage=True, or change num_frames)"
        )
    x = feature_map.mean(dim=(3, 4)).reshape(b, d, num_slices, t // num_slices).mean(-1)
    return x.transpose(1, 2)


@register_method("tclr", TCLRParams)
class TCLR(nn.Module):
    """TCLR around an encoder of the vidssl protocol (``forward_feature_map``, ``preprocess``).

    ``forward(batch)``: ``batch["views"]`` = ``[global, local0, ..., local{K-1}]`` uint8
    ``(B, T, C, H, W)``. Returns ``loss``; ``loss_ic`` (= ``loss_ic_global + loss_ic_local``),
    ``loss_ll``, ``loss_gl`` (unweighted); ``acc``/``pos_sim``/``neg_sim`` of the global-clip
    instance task; ``acc_ll`` and ``acc_gl`` (top-1 of the positive in the LL and GL tasks).

    BatchNorm: the encoder sees the ``2B`` global clips in one call and the ``2KB`` local clips
    in another; the head normalises pooled global and pooled local embeddings as two groups and
    the slices per slice index (``slice_bn="per_slice"``) or as one group (``"shared"``); the
    authors call both once per clip set of ``B``.
    """

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc_gl", "global-local temporal accuracy (each slice of the global clip finds its own local clip)")

    def __init__(self, encoder: nn.Module, params: TCLRParams):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        norm = norm_kwargs(encoder)
        if params.augment == "tclr":
            aug = tclr_augment(params.crop_size, tuple(params.crop_scale), tuple(params.crop_ratio), **norm)
            self.augment = nn.ModuleList([aug, aug])
        else:
            self.augment = nn.ModuleList([cvrl_augment(params.crop_size, v, **norm) for v in (0, 1)])
        self.head = TCLRProjectionHead(encoder.num_features, params.head_hidden_dim, params.proj_dim)
        self.instance_loss = TCLRInstanceLoss(params.temperature, params.ic_local_pairs, params.gather_negatives)
        self.local_local_loss = LocalLocalLoss(params.temperature)
        self.global_local_loss = GlobalLocalLoss(params.temperature)

    def _two_draws(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, T, C, H, W)`` -> float ``(2n, C, T, S, S)``: draw 0 then draw 1."""
        return torch.cat([self.augment[0](clips), self.augment[1](clips)])

    def embed_slices(self, slices: torch.Tensor) -> torch.Tensor:
        """``(n, K, D)`` slice features -> ``(n, K, E)`` embeddings: one head call per slice index
        (``slice_bn="per_slice"``) or one call on all ``n K`` rows (``"shared"``)."""
        if self.params.slice_bn == "per_slice":
            return torch.stack([self.head(slices[:, j]) for j in range(slices.shape[1])], dim=1)
        return self.head(slices.flatten(0, 1)).view(*slices.shape[:2], -1)

    def loss_scale(self, batch_size: int) -> dict[str, float]:
        """The factor of each mean loss term under ``loss_weights`` (``batch_size``: this rank's)."""
        p = self.params
        if p.loss_weights == "mean":
            return {"ic_global": 1.0, "ic_local": 1.0, "ll": 1.0, "gl": 1.0}
        # the authors sum LL over their whole (single-process) batch: the global batch here, so
        # that DDP's gradient average gives their gradient
        return authors_loss_scale(p.num_local, batch_size * dist.world_size(), p.ic_local_pairs)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        k = self.params.num_local
        if len(views) != k + 1:
            raise ValueError(f"TCLR expects {k + 1} views ({', '.join(self.sampler.view_names)}), got {len(views)}")
        b = views[0].shape[0]
        with torch.no_grad():
            x_global = self._two_draws(views[0])              # (2B, ...): draw, video
            x_local = self._two_draws(torch.cat(views[1:]))   # (2KB, ...): draw, local clip, video

        fmap_global = self.encoder.forward_feature_map(x_global)
        slices = temporal_slices(fmap_global, k)                                   # (2B, K, D)
        z_global = self.head(slices.mean(dim=1)).view(2, b, -1)                    # draw, video
        z_slices = self.embed_slices(slices).view(2, b, k, -1)                     # draw, video, slice
        fmap_local = self.encoder.forward_feature_map(x_local)
        z_local = self.head(fmap_local.mean(dim=(2, 3, 4))).view(2, k, b, -1)      # draw, clip, video

        ic_global, ic_local, stats = self.instance_loss(z_global, z_local, return_stats=True)
        local_by_video = z_local.transpose(1, 2)                                   # draw, video, clip
        loss_ll, stats_ll = self.local_local_loss(local_by_video[0], local_by_video[1], return_stats=True)
        # Global-local for every (global draw, local draw) pair: (0,0), (0,1), (1,0), (1,1).
        combos_g, combos_l = [0, 0, 1, 1], [0, 1, 0, 1]
        loss_gl, stats_gl = self.global_local_loss(
            z_slices[combos_g].flatten(0, 1), local_by_video[combos_l].flatten(0, 1), return_stats=True)

        p, c = self.params, self.loss_scale(b)
        loss_ic = ic_global + ic_local
        loss = (p.ic_weight * (c["ic_global"] * ic_global + c["ic_local"] * ic_local)
                + p.ll_weight * c["ll"] * loss_ll + p.gl_weight * c["gl"] * loss_gl)
        return {"loss": loss, "loss_ic": loss_ic.detach(), "loss_ic_global": ic_global.detach(),
                "loss_ic_local": ic_local.detach(), "loss_ll": loss_ll.detach(), "loss_gl": loss_gl.detach(),
                **stats, "acc_ll": stats_ll["acc"], "acc_gl": stats_gl["acc"], "chance": stats_gl["chance"]}
