"""VideoMAE: masked autoencoders of video (Tong et al., NeurIPS 2022).

One clip per video (16 frames at stride 4), TSN's multi-scale crop (no flip, no colour change),
**tube masking** at a high ratio (90%: the same spatial positions masked in every time step,
:func:`~vidssl.data.masks.tube_mask`). The encoder (a ViT with a token interface: ``videomae_*``)
sees only the visible tokens; a light decoder (:class:`~vidssl.models.masked_heads.PixelDecoder`:
4 blocks, half the encoder's width and heads) puts a mask token at every masked position and
predicts its pixels; the loss is the mean squared error against the **per-patch normalised**
pixels of the masked patches (:func:`~vidssl.losses.masked.pixel_targets`).

Reference code: ``MCG-NJU/VideoMAE`` (``run_mae_pretraining.py``, ``engine_for_pretraining.py``,
``masking_generator.py``, ``modeling_pretrain.py``, ``datasets.py``, ``transforms.py``,
``scripts/kinetics/videomae_vit_base_patch16_224_tubemasking_ratio_0.9_epoch_1600/pretrain.sh``).
The optimiser recipe (AdamW, betas (0.9, 0.95), lr 1.5e-4 x batch / 256, wd 0.05, 40 warm-up
epochs, cosine) is the trainer's (``configs/pretrain/videomae_k400.yaml``). See ``docs/methods.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from vidssl.data.masks import tube_mask
from vidssl.data.samplers import RandomClipSampler
from vidssl.data.transforms import Compose, MultiScaleCrop, Normalize, RandomHorizontalFlip, ToModelLayout
from vidssl.losses.masked import masked_mse, patchify, pixel_targets, unpatchify
from vidssl.methods import building_parts, check_choice, check_ints, check_range, param_error, register_method
from vidssl.methods.common import norm_kwargs, vit_layout
from vidssl.models.masked_heads import PixelDecoder

__all__ = ["VideoMAEParams", "VideoMAE"]


@dataclass
class VideoMAEParams:
    """VideoMAE's parameters (defaults: the authors' Kinetics-400 ViT-B script).

    Sampling: num_frames (16), stride (4: ``--sampling_rate``), short_video ("pad").
    Augmentation: crop_size (224), crop_scales ((1, .875, .75, .66): ``GroupMultiScaleCrop``),
        max_distort (1), flip_prob (0: the authors' pre-training does not flip).
    Masking: mask_type ("tube"; "random": each token on its own, the paper's ablation),
        mask_ratio (0.9).
    Decoder: decoder_depth (4), decoder_dim (None: half the encoder's width, 384 for ViT-B),
        decoder_heads (None: half the encoder's heads, 6 for ViT-B).
    Loss: normalize_target (True: per-patch normalised pixels).
    """

    num_frames: int = 16
    stride: int = 4
    short_video: str = "pad"
    crop_size: int = 224
    crop_scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    flip_prob: float = 0.0
    mask_type: str = "tube"
    mask_ratio: float = 0.9
    decoder_depth: int = 4
    decoder_dim: Optional[int] = None
    decoder_heads: Optional[int] = None
    normalize_target: bool = True

    def __post_init__(self) -> None:
        check_ints("videomae", self, {"num_frames": 1, "stride": 1, "crop_size": 1, "decoder_depth": 1})
        check_choice("videomae", "mask_type", self.mask_type, ("tube", "random"))
        check_range("videomae", self, {"mask_ratio": "[0, 1)", "flip_prob": "[0, 1]"})
        with building_parts("videomae"):
            build_sampler(self)
            MultiScaleCrop(self.crop_size, self.crop_scales, self.max_distort)


def build_sampler(p: VideoMAEParams) -> RandomClipSampler:
    return RandomClipSampler(num_frames=p.num_frames, stride=p.stride, short_video=p.short_video)


@register_method("videomae", VideoMAEParams)
class VideoMAE(nn.Module):
    """VideoMAE around a ViT encoder with ``forward_tokens(x, bool_masked_pos)``.

    ``forward(batch)``: ``batch["views"]`` = ``[clip]`` uint8 ``(B, T, C, H, W)``. Returns
    ``loss`` (MSE on the masked patches' targets) and ``masked`` (the fraction of tokens masked).
    """

    def __init__(self, encoder: nn.Module, params: VideoMAEParams):
        super().__init__()
        self.params = p = params
        self.encoder = encoder
        self.sampler = build_sampler(p)
        layout = vit_layout(encoder, "videomae", p.num_frames, p.crop_size)
        self.grid, self.tubelet, self.patch = layout["grid"], layout["tubelet"], layout["patch"]
        heads = p.decoder_heads or max(1, (layout["heads"] or 2) // 2)
        dim = p.decoder_dim or encoder.num_features // 2
        if dim % heads:
            raise param_error("videomae", "decoder_heads", f"the decoder width {dim} is not a multiple of {heads} heads")
        self.decoder = PixelDecoder(encoder.num_features, self.grid[0] * self.grid[1] * self.grid[2],
                                    self.tubelet, self.patch, dim=dim, depth=p.decoder_depth, heads=heads)
        self.crop = MultiScaleCrop(p.crop_size, p.crop_scales, p.max_distort)
        self.flip = RandomHorizontalFlip(p.flip_prob)
        self.to_model = Compose([Normalize(**norm_kwargs(encoder)), ToModelLayout()])

    def no_weight_decay(self) -> set[str]:
        """Parameters the trainer leaves undecayed although they are not 1-D (the authors'
        ``no_weight_decay()``: the decoder's mask token)."""
        return {"decoder.mask_token"}

    def draw_mask(self, batch_size: int) -> torch.Tensor:
        """bool ``(B, N)``, True = masked (``mask_type`` at ``mask_ratio``)."""
        if self.params.mask_type == "tube":
            return tube_mask(batch_size, self.grid, self.params.mask_ratio)
        t, h, w = self.grid
        return tube_mask(batch_size, (1, t * h * w, 1), self.params.mask_ratio)

    def prepare(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 ``(B, T, C, H, W)`` -> (model input ``(B, C, T, S, S)``, the same in ``[0, 1]``)."""
        with torch.no_grad():
            x01 = self.flip(self.crop(clip))
            return self.to_model(x01), x01.permute(0, 2, 1, 3, 4)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        if len(views) != 1:
            raise ValueError(f"VideoMAE expects 1 view (clip), got {len(views)}")
        x, x01 = self.prepare(views[0])
        mask = self.draw_mask(x.shape[0]).to(x.device)
        pred = self.decoder(self.encoder.forward_tokens(x, bool_masked_pos=mask), mask)
        with torch.no_grad():
            target = pixel_targets(x01, self.tubelet, self.patch, normalize=self.params.normalize_target)
        return {"loss": masked_mse(pred, target, mask), "masked": mask.float().mean()}

    @torch.no_grad()
    def visualize(self, batch: dict, frames: int = 4) -> dict[str, torch.Tensor]:
        """``{"reconstruction": uint8 (3, H, W)}``: per held clip (a row), ``frames`` frames of the
        input, the input with masked patches greyed, and the reconstruction (visible patches as
        they are; masked ones predicted, per-patch normalisation undone with the true patch's
        mean and std, as the authors' ``run_videomae_vis.py``). Same crop and mask every call
        for the same batch (seeded)."""
        gen = torch.random.fork_rng(devices=[])
        with gen:
            torch.manual_seed(0)
            x, x01 = self.prepare(batch["views"][0])
            mask = self.draw_mask(x.shape[0]).to(x.device)
        pred = self.decoder(self.encoder.forward_tokens(x, bool_masked_pos=mask), mask).float()
        patches = patchify(x01.float(), self.tubelet, self.patch)            # (B, N, P, C)
        b, n, npx, c = patches.shape
        if self.params.normalize_target:
            mean = patches.mean(dim=-2, keepdim=True)
            std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
            pred = pred.view(b, -1, npx, c) * std[mask].view(b, -1, 1, c) + mean[mask].view(b, -1, 1, c)
        rec, grey = patches.clone(), patches.clone()
        rec[mask] = pred.reshape(-1, npx, c).clamp(0, 1)
        grey[mask] = 0.5
        clips = [unpatchify(v, self.grid, self.tubelet, self.patch) for v in (patches, grey, rec)]
        steps = torch.linspace(0, clips[0].shape[2] - 1, frames).round().long()
        rows = [torch.cat([torch.cat(list(v[i][:, steps].unbind(1)), dim=2) for v in clips], dim=2)
                for i in range(b)]                                             # (C, S, 3 frames S)
        return {"reconstruction": (torch.cat(rows, dim=1) * 255).round().byte().cpu()}
