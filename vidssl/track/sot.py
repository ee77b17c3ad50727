"""Single-object tracking heads on stride-8 feature maps: SiamFC-style cross-correlation and a
discriminative correlation filter (DCF, ``torch.fft``).

The heads take the frames' feature maps one at a time, in order (a ``(T, C, h, w)`` tensor or
any iterable of ``(C, h, w)`` maps, e.g. the adapter's stream, which gives every kind of encoder
its temporal context); only the template / filter and the current frame's map are held.
Template and search regions are cut from the frame's feature map with RoI-align, instead of
SiamFC's crop-and-resize in pixel space. Features are L2-normalised per cell.

- **xcorr** (SiamFC): the template is the square of side ``sqrt((w + p)(h + p))``,
  ``p = context * (w + h)``, around the first-frame box, sampled on ``t x t`` cells (``t`` = its
  side / stride, clamped to 3-8); each frame, search squares ``search_factor`` times larger at
  ``num_scales`` scales (step 1.0375) are sampled on proportionally more cells, correlated with
  the template (``conv2d``), upsampled (bicubic, x``upsample``), penalised off the unit scale
  (0.9745) and blended with a Hann window (0.176); the peak moves the box, the best scale
  updates its size with rate 0.59. The template is not updated (SiamFC).
- **dcf** (DCFNet-style, linear kernel): on a square window ``1 + padding`` times the target,
  sampled on ``s x s`` cells and multiplied by a Hann window, the filter
  ``H_c = Y conj(X_c) / (sum_k |X_k|^2 + lambda)`` (Gaussian label ``Y``) is learned in the
  Fourier domain and updated with rate ``dcf_lr``; the response is ``ifft2(sum_c H_c Z_c)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError


@dataclass
class SotConfig:
    """SOT head settings (``sot.*`` in ``vidssl track`` configs)."""

    method: str = "xcorr"  # xcorr | dcf
    context: float = 0.5
    search_factor: float = 2.0
    num_scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    upsample: int = 8
    padding: float = 1.5
    dcf_cells: int = 16
    dcf_lambda: float = 1e-4
    dcf_lr: float = 0.02
    dcf_sigma: float = 0.1

    def validate(self) -> "SotConfig":
        if self.method not in ("xcorr", "dcf"):
            raise ConfigError(f"sot.method must be 'xcorr' or 'dcf', got {self.method!r}")
        if not isinstance(self.num_scales, int) or self.num_scales < 1 or self.num_scales % 2 == 0:
            raise ConfigError(f"sot.num_scales must be an odd positive integer, got {self.num_scales!r}")
        for key in ("search_factor", "scale_step"):
            if not getattr(self, key) >= 1:
                raise ConfigError(f"sot.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("scale_lr", "window_influence", "dcf_lr"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"sot.{key} must be in [0, 1], got {getattr(self, key)}")
        if not isinstance(self.dcf_cells, int) or self.dcf_cells < 4:
            raise ConfigError(f"sot.dcf_cells must be an integer >= 4, got {self.dcf_cells!r}")
        if isinstance(self.upsample, bool) or not isinstance(self.upsample, int) or self.upsample < 1:
            raise ConfigError(f"sot.upsample must be a positive integer, got {self.upsample!r}")
        for key in ("context", "padding"):  # target padding: none at 0, never negative
            if not _number(getattr(self, key)) or not getattr(self, key) >= 0:
                raise ConfigError(f"sot.{key} must be a number >= 0, got {getattr(self, key)!r}")
        for key in ("dcf_sigma", "dcf_lambda"):  # label width; regulariser (0 divides by 0)
            if not _number(getattr(self, key)) or not getattr(self, key) > 0:
                raise ConfigError(f"sot.{key} must be a number > 0, got {getattr(self, key)!r}")
        if not _number(self.scale_penalty) or not 0 < self.scale_penalty <= 1:
            raise ConfigError(f"sot.scale_penalty must be in (0, 1], got {self.scale_penalty!r}")
        return self


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sample_square(fmap: torch.Tensor, cx: float, cy: float, side: float, cells: int,
                  stride: int, scales: list[float] | None = None) -> torch.Tensor:
    """RoI-align squares of ``side * scale`` pixels centred at ``(cx, cy)`` on ``cells x cells``
    of the ``(C, h, w)`` map -> ``(S, C, cells, cells)``, normalised per cell."""
    from torchvision.ops import roi_align

    scales = scales or [1.0]
    rois = torch.tensor([[0, cx - side * s / 2, cy - side * s / 2, cx + side * s / 2,
                          cy + side * s / 2] for s in scales], dtype=torch.float32,
                        device=fmap.device)
    out = roi_align(fmap[None].float(), rois, (cells, cells), spatial_scale=1.0 / stride,
                    sampling_ratio=2, aligned=True)
    return F.normalize(out, dim=1)


def _hann(n: int, device=None) -> torch.Tensor:
    w = torch.hann_window(n + 2, periodic=False, device=device)[1:-1]
    return torch.outer(w, w)


def _scales(cfg: SotConfig) -> list[float]:
    half = cfg.num_scales // 2
    return [cfg.scale_step ** k for k in range(-half, half + 1)]


class _State:
    def __init__(self, box: np.ndarray, size: tuple[int, int]):
        x, y, w, h = [float(v) for v in box]
        self.cx, self.cy, self.w, self.h = x + w / 2, y + h / 2, max(w, 2.0), max(h, 2.0)
        self.frame_h, self.frame_w = size

    def move(self, dx: float, dy: float, scale: float, lr: float) -> None:
        self.cx = float(np.clip(self.cx + dx, 0, self.frame_w))
        self.cy = float(np.clip(self.cy + dy, 0, self.frame_h))
        s = (1 - lr) + lr * scale
        self.w = float(np.clip(self.w * s, 2.0, self.frame_w))
        self.h = float(np.clip(self.h * s, 2.0, self.frame_h))

    def box(self) -> np.ndarray:
        return np.array([self.cx - self.w / 2, self.cy - self.h / 2, self.w, self.h])


def _xcorr(feats: Iterator[torch.Tensor], st: _State, stride: int, cfg: SotConfig
           ) -> np.ndarray:
    first = next(feats)
    device = first.device
    p = cfg.context * (st.w + st.h)
    z_side = math.sqrt((st.w + p) * (st.h + p))
    t = int(np.clip(round(z_side / stride), 3, 8))
    s = int(round(t * cfg.search_factor))
    template = sample_square(first, st.cx, st.cy, z_side, t, stride)  # (1, C, t, t)
    del first  # only the template is kept
    r = s - t + 1
    up = r * cfg.upsample
    window = _hann(up, device).flatten()
    scales = _scales(cfg)
    penalty = torch.tensor([1.0 if abs(sc - 1) < 1e-9 else cfg.scale_penalty for sc in scales],
                           device=device)
    out = [st.box()]
    for fmap in feats:
        x_side = z_side * cfg.search_factor
        search = sample_square(fmap, st.cx, st.cy, x_side, s, stride, scales)
        resp = F.conv2d(search, template) / (t * t)  # (S, 1, r, r): mean cosine
        resp = F.interpolate(resp, size=(up, up), mode="bicubic", align_corners=True)[:, 0]
        best = int((resp.flatten(1).amax(1) * penalty).argmax())
        rmap = resp[best].flatten()
        rmap = rmap - rmap.min()
        rmap = rmap / rmap.sum().clamp(min=1e-12)
        rmap = (1 - cfg.window_influence) * rmap + cfg.window_influence * window / window.sum()
        py, px = divmod(int(rmap.argmax()), up)
        cell = x_side * scales[best] / s  # pixels per search cell
        # response cell i (of r) puts the template centre i - (r - 1) / 2 search cells off the
        # window centre; the upsampling (align_corners) maps up-index u to i = u (r-1)/(up-1)
        to_cells = (r - 1) / (up - 1) if up > 1 else 0.0
        dx = (px - (up - 1) / 2) * to_cells * cell
        dy = (py - (up - 1) / 2) * to_cells * cell
        st.move(dx, dy, scales[best], cfg.scale_lr)
        z_side = z_side * ((1 - cfg.scale_lr) + cfg.scale_lr * scales[best])
        out.append(st.box())
    return np.stack(out)


def _dcf(feats: Iterator[torch.Tensor], st: _State, stride: int, cfg: SotConfig) -> np.ndarray:
    first = next(feats)
    device = first.device
    n = cfg.dcf_cells
    side = math.sqrt(st.w * st.h) * (1 + cfg.padding)
    hann = _hann(n, device)
    sigma = max(0.5, n / (1 + cfg.padding) * cfg.dcf_sigma)
    idx = torch.arange(n, device=device, dtype=torch.float32)
    d = torch.minimum(idx, n - idx)  # circular distance to 0: the label peaks at zero shift
    y = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma ** 2))
    yf = torch.fft.fft2(y)

    def patch(fmap: torch.Tensor, sides: list[float]) -> torch.Tensor:
        return sample_square(fmap, st.cx, st.cy, side, n, stride, sides) * hann

    xf = torch.fft.fft2(patch(first, [1.0])[0])  # (C, n, n)
    del first  # only the filter is kept
    num = yf * xf.conj()
    den = (xf * xf.conj()).real.sum(0) + cfg.dcf_lambda
    scales = _scales(cfg)
    penalty = [1.0 if abs(sc - 1) < 1e-9 else cfg.scale_penalty for sc in scales]
    out = [st.box()]
    for fmap in feats:
        zf = torch.fft.fft2(patch(fmap, scales))  # (S, C, n, n)
        resp = torch.fft.ifft2((num[None] * zf).sum(1) / den).real  # (S, n, n)
        peaks = resp.flatten(1).amax(1).cpu().numpy() * np.array(penalty)
        best = int(peaks.argmax())
        py, px = divmod(int(resp[best].argmax()), n)
        py, px = (py - n if py > n // 2 else py), (px - n if px > n // 2 else px)
        cell = side * scales[best] / n
        st.move(px * cell, py * cell, scales[best], cfg.scale_lr)
        side = side * ((1 - cfg.scale_lr) + cfg.scale_lr * scales[best])
        xf_new = torch.fft.fft2(patch(fmap, [1.0])[0])
        lr = cfg.dcf_lr
        num = (1 - lr) * num + lr * yf * xf_new.conj()
        den = (1 - lr) * den + lr * ((xf_new * xf_new.conj()).real.sum(0) + cfg.dcf_lambda)
        out.append(st.box())
    return np.stack(out)


def _prepend(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """``first`` then ``rest``, holding ``first`` only until it is taken (``itertools.chain``
    would keep it alive as long as ``rest`` runs)."""
    yield first
    del first
    yield from rest


def track_object(feats: torch.Tensor | Iterable[torch.Tensor], init_box: np.ndarray,
                 frame_size: tuple[int, int], stride: int = 8, config: SotConfig | None = None
                 ) -> np.ndarray:
    """Track one object.

    Args:
        feats: per-frame feature maps at ``stride``: ``(T, C, h, w)``, or any iterable of
            ``(C, h, w)`` maps in frame order (consumed one at a time).
        init_box: ``(x, y, w, h)`` in frame 0 (pixels).
        frame_size: ``(H, W)`` of the frames.

    Returns:
        ``(T, 4)`` boxes ``(x, y, w, h)``; row 0 is ``init_box``.
    """
    cfg = (config or SotConfig()).validate()
    box = np.asarray(init_box, dtype=np.float64).reshape(4)
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(f"initial box must be finite with positive size, got {box.tolist()}")
    it = iter(feats)
    first = next(it, None)
    if first is None or first.dim() != 3:
        raise ConfigError("track_object takes feature maps (T, C, h, w) or an iterable of "
                          "(C, h, w) maps, at least one")
    st = _State(box, frame_size)
    head = _xcorr if cfg.method == "xcorr" else _dcf
    feats = _prepend(first, it)
    del first  # the head keeps its template / filter, not frame 0's map
    out = head(feats, st, stride, cfg)
    out[0] = box
    return out
