"""Spatial steps: resize, centre crop, random resized crop, horizontal flip and box erasing.

Random boxes and flips are drawn once per clip and shared by all its frames. See
:mod:`vidssl.data.transforms.video` for the step protocol, parameters and dtype policy.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torchvision.transforms.v2.functional as TF

from vidssl.data.transforms import functional as F
from vidssl.data.transforms.video import (
    Params,
    Size,
    VideoTransform,
    _check_p,
    _coin,
    _mask,
    _pair,
    _uniform,
)

__all__ = ["Resize", "CenterCrop", "RandomResizedCrop", "MultiScaleCrop", "RandomHorizontalFlip", "RandomErase"]


class Resize(VideoTransform):
    """Resize every frame: an int resizes the short side (aspect kept), ``(h, w)`` is exact.

    torchvision's ``resize`` (bilinear, antialias) on the ``(B*T, C, H, W)`` view; keeps uint8.
    """

    def __init__(self, size: Size, antialias: bool = True):
        super().__init__()
        self.size = [size] if isinstance(size, int) else list(_pair(size))
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        self.antialias = antialias

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = TF.resize(x.reshape(b * t, c, h, w), self.size, antialias=self.antialias)
        return y.view(b, t, c, *y.shape[-2:])

    def extra_repr(self) -> str:
        return f"size={self.size}, antialias={self.antialias}"


class CenterCrop(VideoTransform):
    """torchvision's ``center_crop`` (pads with zeros if the frame is smaller); keeps dtype."""

    def __init__(self, size: Size):
        super().__init__()
        self.size = _pair(size)

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return TF.center_crop(x, list(self.size))

    def extra_repr(self) -> str:
        return f"size={self.size}"


class RandomResizedCrop(VideoTransform):
    """One random box per clip (area ``scale`` of the frame, aspect ``ratio``), resized to ``size``.

    The box is drawn like torchvision's ``RandomResizedCrop`` (10 tries, integer boxes, centre
    fallback), vectorised over clips.

    Args:
        size: output ``(h, w)`` or an int for a square.
        scale: range of the box area as a fraction of the frame area.
        ratio: range of the box aspect ``w / h`` (sampled log-uniformly).
        backend: ``"grid"`` (default): the whole batch in one bilinear ``grid_sample`` (float
            output, no antialiasing). ``"per_clip"``: torchvision's ``resized_crop`` per clip
            (antialiased, keeps uint8; faster on CPU with uint8 input, see docs/transforms.md).
    """

    def __init__(
        self,
        size: Size,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (0.5, 2.0),
        backend: Literal["grid", "per_clip"] = "grid",
        generator: torch.Generator | None = None,
    ):
        super().__init__(generator)
        self.size = _pair(size)
        if not (0.0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not (0.0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        if backend not in ("grid", "per_clip"):
            raise ValueError(f"backend must be 'grid' or 'per_clip', got {backend!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.backend = backend

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        """``boxes``: ``(B, 4)`` float ``(top, left, height, width)`` in pixels of a frame of size
        ``frame`` ``(B, 2)`` (every parameter has the batch as its first dimension)."""
        b, h, w = shape[0], shape[-2], shape[-1]
        tries = 10
        area = _uniform((b, tries), *self.scale, generator) * (h * w)
        log_r = _uniform((b, tries), math.log(self.ratio[0]), math.log(self.ratio[1]), generator)
        aspect = torch.exp(log_r)
        cw = torch.sqrt(area * aspect).round()
        ch = torch.sqrt(area / aspect).round()
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = ok.to(torch.int8).argmax(dim=1, keepdim=True)  # first valid try (0 if none)
        cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)
        # Fallback (no valid try): torchvision's centre crop with the aspect clamped into `ratio`.
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fw, fh = round(h * self.ratio[1]), h
        else:
            fw, fh = w, h
        found = ok.any(dim=1)
        cw = torch.where(found, cw, torch.tensor(float(fw)))
        ch = torch.where(found, ch, torch.tensor(float(fh)))
        u = torch.rand((b, 2), generator=generator)
        top = torch.where(found, (u[:, 0] * (h - ch + 1)).floor(), torch.tensor(float((h - fh) // 2)))
        left = torch.where(found, (u[:, 1] * (w - cw + 1)).floor(), torch.tensor(float((w - fw) // 2)))
        frame = torch.tensor([[h, w]]).expand(b, 2)
        return {"boxes": torch.stack([top, left, ch, cw], dim=1), "frame": frame}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        boxes = params["boxes"]
        fh, fw = (int(v) for v in params["frame"][0])
        h, w = x.shape[-2:]
        if (fh, fw) != (h, w):  # replaying a draw on a stream of another resolution
            boxes = boxes * torch.tensor([h / fh, w / fw, h / fh, w / fw])
        if self.backend == "grid":
            return F.resized_crop(F.to_float(x), boxes, self.size)
        out = [
            TF.resized_crop(clip, int(t), int(l), max(int(bh), 1), max(int(bw), 1), list(self.size))
            for clip, (t, l, bh, bw) in zip(x, boxes.round().tolist())
        ]  # antialias=True is torchvision's default
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}, backend={self.backend!r}"


class MultiScaleCrop(VideoTransform):
    """TSN's multi-scale crop, the pre-training crop of VideoMAE (``transforms.py``
    ``GroupMultiScaleCrop(input_size, [1, .875, .75, .66])``), one draw per clip.

    The crop side is a fraction ``scales[i]`` of the frame's short side, chosen independently for
    the height and the width with ``|i - j| <= max_distort`` (one ``(w, h)`` pair drawn uniformly
    from the allowed ones; a side within 3 px of the output size snaps to it), placed at one of
    5 (``more_fix_crop=False``) or 13 fixed offsets (corners, centre, edge middles, quarter
    points: steps of a quarter of the free space), then resized to ``size``. The resize is the
    batched bilinear ``grid_sample`` (the authors' PIL bilinear resize antialiases when it
    shrinks a crop by a large factor; this one does not).
    """

    def __init__(self, size: Size, scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66), max_distort: int = 1,
                 more_fix_crop: bool = True, generator: torch.Generator | None = None):
        super().__init__(generator)
        self.size = _pair(size)
        if not scales or not all(0.0 < float(v) <= 1.0 for v in scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {tuple(scales)}")
        if isinstance(max_distort, bool) or not isinstance(max_distort, int) or max_distort < 0:
            raise ValueError(f"max_distort must be an int >= 0, got {max_distort!r}")
        self.scales, self.max_distort, self.more_fix_crop = tuple(float(v) for v in scales), max_distort, more_fix_crop

    def crop_pairs(self, h: int, w: int) -> list[tuple[int, int]]:
        """The allowed ``(crop_w, crop_h)`` pairs for an ``h x w`` frame."""
        sides = [int(min(h, w) * v) for v in self.scales]
        ch = [self.size[0] if abs(x - self.size[0]) < 3 else x for x in sides]
        cw = [self.size[1] if abs(x - self.size[1]) < 3 else x for x in sides]
        return [(cw[j], ch[i]) for i in range(len(ch)) for j in range(len(cw)) if abs(i - j) <= self.max_distort]

    def offsets(self, h: int, w: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
        """The fixed ``(left, top)`` offsets (``fill_fix_offset``)."""
        ws, hs = (w - crop_w) // 4, (h - crop_h) // 4
        out = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
        if self.more_fix_crop:
            out += [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0), (ws, hs), (3 * ws, hs),
                    (ws, 3 * hs), (3 * ws, 3 * hs)]
        return out

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        """``boxes``: ``(B, 4)`` ``(top, left, height, width)`` in pixels of a frame of size ``frame``."""
        b, h, w = shape[0], shape[-2], shape[-1]
        pairs = self.crop_pairs(h, w)
        u = torch.rand((b, 2), generator=generator)
        boxes = []
        for i in range(b):
            cw, ch = pairs[min(int(u[i, 0] * len(pairs)), len(pairs) - 1)]
            cw, ch = min(cw, w), min(ch, h)
            offs = self.offsets(h, w, ch, cw)
            left, top = offs[min(int(u[i, 1] * len(offs)), len(offs) - 1)]
            boxes.append([top, left, ch, cw])
        return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(b, 4),
                "frame": torch.tensor([[h, w]]).expand(b, 2)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return F.resized_crop(F.to_float(x), params["boxes"], self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, scales={self.scales}, max_distort={self.max_distort}"


class RandomHorizontalFlip(VideoTransform):
    """Flip a whole clip left-right with probability ``p``; keeps dtype."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        super().__init__(generator)
        self.p = _check_p(p)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        return {"flip": _coin((shape[0],), self.p, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        flip = params["flip"]
        if not bool(flip.any()):
            return x
        if bool(flip.all()):
            return x.flip(-1)
        return torch.where(_mask(flip, x), x.flip(-1), x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class RandomErase(VideoTransform):
    """Black out one box per clip (same box on every frame) with probability ``p``.

    The authors erase a ``h x w`` box, ``h, w`` uniform integers in ``[9, 18]`` on a 112-px crop,
    at a uniform top-left corner anywhere in the frame (the box is clipped at the border).
    ``size`` gives that range as fractions of the frame side, so it scales with the crop.
    """

    def __init__(self, p: float = 0.5, size: tuple[float, float] = (9 / 112, 19 / 112),
                 generator: torch.Generator | None = None):
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability p must be in [0, 1], got {p}")
        if not 0.0 < size[0] <= size[1] <= 1.0:
            raise ValueError(f"size must satisfy 0 < min <= max <= 1, got {size}")
        self.p, self.size = float(p), (float(size[0]), float(size[1]))

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict:
        b, h, w = shape[0], shape[-2], shape[-1]
        u = torch.rand(b, 5, generator=generator)
        lo, hi = self.size
        return {"applied": u[:, 0] < self.p,
                "box": torch.stack([(u[:, 1] * h).floor(), (u[:, 2] * w).floor(),
                                    (lo + (hi - lo) * u[:, 3]) * h, (lo + (hi - lo) * u[:, 4]) * w], 1)}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        if not bool(params["applied"].any()):
            return x
        h, w = x.shape[-2:]
        top, left, bh, bw = params["box"].to(x.device, non_blocking=True).unbind(1)
        rows = torch.arange(h, device=x.device, dtype=top.dtype)
        cols = torch.arange(w, device=x.device, dtype=top.dtype)
        in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + bh.floor()[:, None])
        in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + bw.floor()[:, None])
        box = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
        box &= params["applied"].to(x.device, non_blocking=True)[:, None, None]
        return x.masked_fill(box[:, None, None], 0.0)
