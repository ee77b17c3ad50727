"""Photometric steps: colour jitter, grayscale, Gaussian blur, solarize and channel drop.

Parameters are drawn per clip (shape ``(B,)``) and broadcast over its frames; ``ColorJitter`` and
``RandomGrayscale`` take ``per_frame=True`` to draw them per ``(clip, frame)`` (DPC). All of them
convert uint8 input to float32 in ``[0, 1]`` on entry. See :mod:`vidssl.data.transforms.video`.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torchvision.transforms.v2.functional as TF

from vidssl.data.transforms import functional as F
from vidssl.data.transforms.video import Params, VideoTransform, _check_p, _coin, _mask, _uniform

__all__ = ["ColorJitter", "RandomGrayscale", "GaussianBlur", "RandomSolarize", "RandomChannelDrop"]


# ColorJitter op codes: index into the stacked factors (brightness, contrast, saturation, hue).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
_JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")
_IDENTITY = (1.0, 1.0, 1.0, 0.0)


def _jitter_range(value: float | tuple[float, float], name: str) -> tuple[float, float]:
    center, bound = (0.0, (-0.5, 0.5)) if name == "hue" else (1.0, (0.0, math.inf))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        lo, hi = center - value, center + value
        if name != "hue":
            lo = max(lo, 0.0)
    else:
        lo, hi = (float(v) for v in value)
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} range must lie in {bound}, got {(lo, hi)}")
    return float(lo), float(hi)


class ColorJitter(VideoTransform):
    """torchvision's ``ColorJitter`` with factors drawn per clip (or per frame), applied with prob ``p``.

    Factors are uniform in ``[max(0, 1 - v), 1 + v]`` (brightness, contrast, saturation) and
    ``[-hue, hue]``, or the given ``(min, max)``; the enabled ops run in a random order drawn per
    clip (per frame with ``per_frame=True``), as torchvision draws one order per call. Contrast
    uses each frame's mean luma (torchvision on a ``(T, C, H, W)`` clip does the same).

    Cost: the order varies per clip, so the three blend ops run in up to ``2 x 3`` batched passes
    around a single hue pass (slots a clip does not use get the identity factor).
    """

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.0,
        contrast: float | tuple[float, float] = 0.0,
        saturation: float | tuple[float, float] = 0.0,
        hue: float | tuple[float, float] = 0.0,
        p: float = 1.0,
        per_frame: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__(generator)
        values = (brightness, contrast, saturation, hue)
        self.ranges = tuple(_jitter_range(v, n) for v, n in zip(values, _JITTER_NAMES))
        self.enabled = tuple(i for i, r in enumerate(self.ranges) if r != (_IDENTITY[i],) * 2)
        self.p = _check_p(p)
        self.per_frame = bool(per_frame)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        """Factors and ``applied``: ``(B,)`` or ``(B, T)``; ``order``: ``(..., k)`` op codes (0..3)."""
        n = (shape[0], shape[1]) if self.per_frame else (shape[0],)
        applied = _coin(n, self.p, generator)
        params: Params = {"applied": applied}
        for i, name in enumerate(_JITTER_NAMES):
            if i in self.enabled:
                f = _uniform(n, *self.ranges[i], generator)
                params[name] = torch.where(applied, f, torch.tensor(_IDENTITY[i]))
            else:
                params[name] = torch.full(n, _IDENTITY[i])
        perm = torch.rand(n + (len(self.enabled),), generator=generator).argsort(dim=-1)
        params["order"] = torch.tensor(self.enabled, dtype=torch.long)[perm]
        return params

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        x = F.to_float(x)
        order = params["order"]
        k = order.shape[-1]
        if k == 0 or not bool(params["applied"].any()):
            return x
        factors = torch.stack([params[n] for n in _JITTER_NAMES], dim=-1)  # (..., 4)
        if HUE not in self.enabled:
            everywhere = torch.ones(order.shape[:-1], dtype=torch.bool)
            for j in range(k):
                x = self._blend_step(x, order[..., j], factors, everywhere)
            return x
        # Each clip: blend ops before its hue slot, one batched hue pass, blend ops after it.
        hue_pos = (order == HUE).to(torch.int8).argmax(dim=-1)
        cheap = order[order != HUE].view(*order.shape[:-1], k - 1)
        for j in range(k - 1):
            x = self._blend_step(x, cheap[..., j], factors, j < hue_pos)
        hue_on = params["applied"] & (params["hue"] != 0)
        if bool(hue_on.all()):
            x = F.adjust_hue(x, params["hue"])
        elif bool(hue_on.any()):
            x = torch.where(_mask(hue_on, x), F.adjust_hue(x, params["hue"]), x)
        for j in range(k - 1):
            x = self._blend_step(x, cheap[..., j], factors, j >= hue_pos)
        return x

    @staticmethod
    def _blend_step(
        x: torch.Tensor, op: torch.Tensor, factors: torch.Tensor, active: torch.Tensor
    ) -> torch.Tensor:
        """One slot: each clip/frame blends with its op's reference (0, mean luma or luma)."""
        f = factors.gather(-1, op.unsqueeze(-1)).squeeze(-1)
        f = torch.where(active, f, torch.ones_like(f))
        if bool((f == 1.0).all()):
            return x
        use_sat = (op == SATURATION) & (f != 1.0)
        use_con = (op == CONTRAST) & (f != 1.0)
        ref: torch.Tensor | float = 0.0  # brightness: blend with black, i.e. x * f
        if bool(use_sat.any()) or bool(use_con.any()):
            gray = F.grayscale(x)
            ref = gray * F.per_clip(use_sat.float(), x)
            if bool(use_con.any()):
                ref = ref + gray.mean(dim=(-3, -2, -1), keepdim=True) * F.per_clip(use_con.float(), x)
        return F.blend(x, ref, F.per_clip(f, x))

    def extra_repr(self) -> str:
        r = ", ".join(f"{n}={self.ranges[i]}" for i, n in enumerate(_JITTER_NAMES) if i in self.enabled)
        return f"{r}, p={self.p}, per_frame={self.per_frame}"


class RandomGrayscale(VideoTransform):
    """Replace a clip (or a frame, ``per_frame=True``) by its grey version with probability ``p``.

    ``mode="luma"``: torchvision's ``rgb_to_grayscale`` (ITU-R 601) in all three channels.
    ``mode="channel"``: one random RGB channel copied to all three, as DPC's ``RandomGray`` does.
    """

    def __init__(
        self,
        p: float = 0.1,
        per_frame: bool = False,
        mode: Literal["luma", "channel"] = "luma",
        generator: torch.Generator | None = None,
    ):
        super().__init__(generator)
        if mode not in ("luma", "channel"):
            raise ValueError(f"mode must be 'luma' or 'channel', got {mode!r}")
        self.p = _check_p(p)
        self.per_frame = bool(per_frame)
        self.mode = mode

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        n = (shape[0], shape[1]) if self.per_frame else (shape[0],)
        applied = _coin(n, self.p, generator)
        channel = torch.randint(0, 3, n, generator=generator)
        return {"applied": applied, "channel": channel}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        x = F.to_float(x)
        applied = params["applied"]
        if not bool(applied.any()):
            return x
        if self.mode == "luma":
            gray = TF.rgb_to_grayscale(x, num_output_channels=3)
        else:
            b, t, _, h, w = x.shape
            ch = params["channel"].to(x.device, non_blocking=True)
            ch = ch.view(b, -1, 1, 1, 1).expand(b, t, 1, h, w)
            gray = x.gather(2, ch).expand_as(x)
        return torch.where(_mask(applied, x), gray, x)

    def extra_repr(self) -> str:
        return f"p={self.p}, per_frame={self.per_frame}, mode={self.mode!r}"


class GaussianBlur(VideoTransform):
    """Blur a clip with probability ``p``, ``sigma ~ U(sigma)`` per clip, fixed odd ``kernel_size``.

    Only the selected clips are convolved (their indices are known on the host, no sync).
    """

    def __init__(
        self,
        kernel_size: int,
        sigma: tuple[float, float] = (0.1, 2.0),
        p: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__(generator)
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if not 0.0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must satisfy 0 < min <= max, got {sigma}")
        self.kernel_size = int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = _check_p(p)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        applied = _coin((shape[0],), self.p, generator)
        return {"applied": applied, "sigma": _uniform((shape[0],), *self.sigma, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        x = F.to_float(x)
        applied, sigma = params["applied"], params["sigma"]
        if bool(applied.all()):
            return F.gaussian_blur(x, sigma, self.kernel_size)
        idx = applied.nonzero().squeeze(1)  # CPU parameters: no device sync
        if idx.numel() == 0:
            return x
        sigma = sigma[idx]
        idx = idx.to(x.device, non_blocking=True)
        return x.index_copy(0, idx, F.gaussian_blur(x.index_select(0, idx), sigma, self.kernel_size))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"


class RandomSolarize(VideoTransform):
    """Invert pixels ``>= threshold`` (on the ``[0, 1]`` scale) of a clip with probability ``p``."""

    def __init__(self, threshold: float = 0.5, p: float = 0.2, generator: torch.Generator | None = None):
        super().__init__(generator)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is on the [0, 1] scale, got {threshold}")
        self.threshold = float(threshold)
        self.p = _check_p(p)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        return {"applied": _coin((shape[0],), self.p, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        x = F.to_float(x)
        applied = params["applied"]
        if not bool(applied.any()):
            return x
        return torch.where(_mask(applied, x), TF.solarize(x, self.threshold), x)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, p={self.p}"


class RandomChannelDrop(VideoTransform):
    """Zero one random RGB channel of a clip with probability ``p`` (TCLR's colour drop).

    Works on ``[0, 1]`` floats before normalisation (0 is black, as in the authors' code).
    """

    def __init__(self, p: float = 0.125, generator: torch.Generator | None = None):
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability p must be in [0, 1], got {p}")
        self.p = float(p)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict:
        b = shape[0]
        return {"applied": torch.rand(b, generator=generator) < self.p,
                "channel": torch.randint(0, 3, (b,), generator=generator)}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        if not bool(params["applied"].any()):
            return x
        keep = torch.ones(x.shape[0], 1, x.shape[2], 1, 1, dtype=x.dtype)
        rows = params["applied"].nonzero().flatten()
        keep[rows, 0, params["channel"][rows]] = 0.0
        return x * keep.to(x.device, non_blocking=True)
