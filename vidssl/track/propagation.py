"""Label propagation (UniTrack / CRW): VOS masks and pose keypoints as heat-maps.

For each target frame ``t``, the context is the first frame (given labels) plus the
``num_context`` previous frames (their propagated soft labels). With L2-normalised features,
every target cell attends to the context cells with affinity ``dot / temperature``: to every
cell of the first frame (long-term memory, matched globally, so an object that has moved far
from where it started is still found), and to the cells of the previous frames that lie
strictly within ``radius`` feature cells (Euclidean distance ``< radius``) of it -- as CRW's and
UniTrack's code, which add the locality mask to the short-term context only. Only the ``topk``
strongest per target cell are kept, softmaxed, and used to average the context labels. Labels live at the feature resolution (the first-frame
mask is area-downsampled by the stride, 8) and predictions are upsampled bilinearly before the
arg-max. Defaults are UniTrack's: context 1 + 5, temperature 0.05, radius 12, top-10.

Propagation runs online (:class:`LabelPropagator`, :func:`iter_propagate`,
:func:`iter_propagate_masks`): features come in one frame at a time and only the context is
kept (frame 0's normalised features and labels, and the last ``num_context`` frames'), so a
sequence's length does not change the memory it needs. :func:`propagate` and
:func:`propagate_masks` take / return whole ``(T, ...)`` tensors on top of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError


@dataclass
class PropagationConfig:
    """UniTrack propagation settings (``propagation.*`` in ``vidssl track`` configs)."""

    temperature: float = 0.05
    topk: int = 10
    radius: float = 12.0
    num_context: int = 5
    max_pairs: int = 20_000_000  # affinity entries per chunk (memory bound)

    def validate(self) -> "PropagationConfig":
        if not self.temperature > 0:
            raise ConfigError(f"propagation.temperature must be > 0, got {self.temperature}")
        if not isinstance(self.topk, int) or self.topk < 1:
            raise ConfigError(f"propagation.topk must be a positive integer, got {self.topk!r}")
        if not self.radius > 0:
            raise ConfigError(f"propagation.radius must be > 0, got {self.radius}")
        if not isinstance(self.num_context, int) or self.num_context < 0:
            raise ConfigError(f"propagation.num_context must be >= 0, got {self.num_context!r}")
        return self


def radius_mask(h: int, w: int, radius: float, device=None) -> torch.Tensor:
    """``bool (h*w, h*w)``: source cell ``i`` may feed target cell ``j`` (distance < radius,
    strict, as CRW's ``MaskedAttention``)."""
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.int32),
                            torch.arange(w, device=device, dtype=torch.int32), indexing="ij")
    y, x = yy.reshape(-1), xx.reshape(-1)
    d2 = (y[:, None] - y[None]) ** 2 + (x[:, None] - x[None]) ** 2  # exact integer distances
    return d2 < radius ** 2


def _prepend(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """``first`` then ``rest``, holding ``first`` only until it is taken (``itertools.chain``
    would keep it alive as long as ``rest`` runs)."""
    yield first
    del first
    yield from rest


class LabelPropagator:
    """Online propagation: frame 0's features and labels, then one frame's features per
    :meth:`step`, which returns that frame's propagated soft labels.

    It holds what the next frame's context needs and nothing more: frame 0's normalised
    features and labels, and those of the last ``num_context`` frames.

    Args:
        first_feats: ``(C, h, w)`` features of frame 0 (normalised here along ``C``).
        first_labels: ``(K, h, w)`` labels of frame 0 (one-hot masks or heat-maps).
    """

    def __init__(self, first_feats: torch.Tensor, first_labels: torch.Tensor,
                 config: PropagationConfig | None = None):
        self.cfg = (config or PropagationConfig()).validate()
        if first_feats.dim() != 3 or first_labels.dim() != 3 or \
                first_labels.shape[1:] != first_feats.shape[1:]:
            raise ConfigError(f"propagate takes feats (T, C, h, w) and labels (K, h, w) of the "
                              f"same h, w; got {(1, *first_feats.shape)} and "
                              f"{tuple(first_labels.shape)}")
        self.c, self.h, self.w = first_feats.shape
        self.k = first_labels.shape[0]
        n = self.h * self.w
        self.first = (self._norm(first_feats),
                      first_labels.reshape(self.k, n).to(first_feats.device).float())
        self.recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=self.cfg.num_context)
        self.blocked = ~radius_mask(self.h, self.w, self.cfg.radius, first_feats.device)

    def _norm(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(feats.float()[None], dim=1)[0].reshape(self.c, self.h * self.w)

    def step(self, feats: torch.Tensor) -> torch.Tensor:
        """``(C, h, w)`` features of the next frame -> its ``(K, h, w)`` soft labels."""
        if tuple(feats.shape) != (self.c, self.h, self.w):
            raise ConfigError(f"propagation: a frame's features are {tuple(feats.shape)}, "
                              f"frame 0's {(self.c, self.h, self.w)}")
        cfg, n = self.cfg, self.h * self.w
        f = self._norm(feats)
        ctx = [self.first, *self.recent]  # frame 0, then the previous frames, oldest first
        m = len(ctx)
        ctx_f = torch.cat([c[0] for c in ctx], 1)  # (C, M*n)
        ctx_l = torch.cat([c[1] for c in ctx], 1)  # (K, M*n)
        labels = torch.zeros(self.k, n, device=f.device)
        chunk = max(1, cfg.max_pairs // (m * n))
        k = min(cfg.topk, m * n)
        for j0 in range(0, n, chunk):
            j1 = min(n, j0 + chunk)
            aff = ctx_f.t() @ f[:, j0:j1] / cfg.temperature  # (M*n, J)
            if m > 1:  # the radius limits the short-term frames; frame 0 (rows :n) is global
                aff[n:].view(m - 1, n, j1 - j0).masked_fill_(self.blocked[None, :, j0:j1],
                                                             float("-inf"))
            vals, idx = aff.topk(k, dim=0)  # (k, J)
            weights = torch.softmax(vals, dim=0)  # cells outside the radius get weight 0
            gathered = ctx_l[:, idx]  # (K, k, J)
            labels[:, j0:j1] = (gathered * weights.unsqueeze(0)).sum(1)
        if cfg.num_context:
            self.recent.append((f, labels))
        return labels.reshape(self.k, self.h, self.w)


def iter_propagate(feats: Iterable[torch.Tensor], first_labels: torch.Tensor,
                   config: PropagationConfig | None = None) -> Iterator[torch.Tensor]:
    """Stream :func:`propagate`: ``feats`` yields ``(C, h, w)`` maps frame by frame (a
    ``(T, C, h, w)`` tensor does too); yields ``(K, h, w)`` soft labels per frame, frame 0's
    being ``first_labels``. Only the propagation context is held (:class:`LabelPropagator`)."""
    it = iter(feats)
    first = next(it, None)
    if first is None:
        raise ConfigError("propagate needs the features of at least one frame")
    prop = LabelPropagator(first, first_labels, config)
    del first  # the propagator holds its normalised copy
    yield prop.first[1].reshape(prop.k, prop.h, prop.w)
    for f in it:
        yield prop.step(f)


def propagate(feats: torch.Tensor, first_labels: torch.Tensor,
              config: PropagationConfig | None = None) -> torch.Tensor:
    """Propagate ``first_labels`` through a video.

    Args:
        feats: ``(T, C, h, w)`` per-frame features (normalised here along ``C``).
        first_labels: ``(K, h, w)`` labels of frame 0 (one-hot masks or heat-maps).

    Returns:
        ``(T, K, h, w)``: frame 0's labels, then the propagated ones (all in memory;
        :func:`iter_propagate` streams them).
    """
    if feats.dim() != 4 or first_labels.dim() != 3 or first_labels.shape[1:] != feats.shape[2:]:
        raise ConfigError(f"propagate takes feats (T, C, h, w) and labels (K, h, w) of the same "
                          f"h, w; got {tuple(feats.shape)} and {tuple(first_labels.shape)}")
    return torch.stack(list(iter_propagate(feats, first_labels, config)))


# ------------------------------------------------------------------------------------ VOS --
def masks_to_labels(mask: np.ndarray, object_ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` label map -> ``(1 + K, h, w)`` soft one-hot (background first), area-
    downsampled to the feature size."""
    m = torch.as_tensor(np.asarray(mask))
    onehot = torch.stack([(m == 0)] + [(m == k) for k in object_ids]).float().unsqueeze(0)
    return F.interpolate(onehot, size=size, mode="area")[0]


def iter_propagate_masks(feats: Iterable[torch.Tensor], first_mask: np.ndarray,
                         config: PropagationConfig | None = None) -> Iterator[np.ndarray]:
    """Stream :func:`propagate_masks`: ``feats`` yields ``(C, h, w)`` maps frame by frame;
    yields one ``int64 (H, W)`` label map per frame (frame 0's is ``first_mask``)."""
    first_mask = np.asarray(first_mask)
    ids = [int(k) for k in np.unique(first_mask) if k != 0]
    lut = torch.tensor([0] + ids, dtype=torch.int64)
    it = iter(feats)
    first = next(it, None)
    if first is None:
        raise ConfigError("propagate needs the features of at least one frame")
    h, w = first.shape[-2:]
    soft = iter_propagate(_prepend(first, it),
                          masks_to_labels(first_mask, ids, (h, w)), config)
    next(soft)
    del first
    yield first_mask.astype(np.int64)
    for labels in soft:
        up = F.interpolate(labels[None], size=first_mask.shape, mode="bilinear",
                           align_corners=False)
        yield lut[up[0].argmax(0).cpu()].numpy()


def propagate_masks(feats: torch.Tensor, first_mask: np.ndarray,
                    config: PropagationConfig | None = None) -> np.ndarray:
    """Semi-supervised VOS: ``first_mask`` ``(H, W)`` (0 = background, k = object k) through
    ``feats`` ``(T, C, h, w)``; returns ``int64 (T, H, W)`` label maps (frame 0 = the given;
    all in memory: :func:`iter_propagate_masks` streams them)."""
    return np.stack(list(iter_propagate_masks(feats, first_mask, config)))


# ------------------------------------------------------------------------------- keypoints --
def keypoints_to_heatmaps(points: np.ndarray, size: tuple[int, int], stride: int = 8,
                          sigma: float = 0.5) -> torch.Tensor:
    """``(J, 2)`` pixel ``(x, y)`` -> ``(J, h, w)`` Gaussians (``sigma`` in feature cells) at
    the feature grid of a ``size = (H, W)`` frame (cell centres at ``stride * (i + 0.5)``)."""
    h, w = -(-size[0] // stride), -(-size[1] // stride)
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    p = torch.as_tensor(np.asarray(points, dtype=np.float32)) / stride
    d2 = (xx[None] - p[:, 0, None, None]) ** 2 + (yy[None] - p[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def heatmaps_to_keypoints(maps: torch.Tensor, stride: int = 8) -> np.ndarray:
    """``(J, h, w)`` -> ``(J, 2)`` pixel ``(x, y)``: the arg-max refined by the weighted mean of
    its 3x3 neighbourhood."""
    j, h, w = maps.shape
    flat = maps.reshape(j, -1).argmax(1)
    out = np.zeros((j, 2), dtype=np.float64)
    for i in range(j):
        y, x = divmod(int(flat[i]), w)
        y0, y1, x0, x1 = max(0, y - 1), min(h, y + 2), max(0, x - 1), min(w, x + 2)
        patch = maps[i, y0:y1, x0:x1].clamp(min=0)
        yy, xx = torch.meshgrid(torch.arange(y0, y1), torch.arange(x0, x1), indexing="ij")
        s = float(patch.sum()) or 1.0
        out[i] = [(float((patch * xx).sum()) / s + 0.5) * stride,
                  (float((patch * yy).sum()) / s + 0.5) * stride]
    return out


def propagate_keypoints(feats: torch.Tensor, points: np.ndarray, frame_size: tuple[int, int],
                        stride: int = 8, config: PropagationConfig | None = None,
                        sigma: float = 0.5) -> np.ndarray:
    """Pose tracking: ``points`` ``(J, 2)`` in frame 0 -> ``(T, J, 2)`` pixel positions."""
    maps = keypoints_to_heatmaps(points, frame_size, stride, sigma)
    if tuple(maps.shape[1:]) != tuple(feats.shape[-2:]):
        raise ConfigError(f"heat-maps {tuple(maps.shape[1:])} do not match the feature grid "
                          f"{tuple(feats.shape[-2:])}; pass the adapter's stride")
    soft = propagate(feats, maps, config)
    out = np.stack([heatmaps_to_keypoints(soft[t].cpu(), stride) for t in range(soft.shape[0])])
    out[0] = np.asarray(points)
    return out
