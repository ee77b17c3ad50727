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
"""

from __future__ import annotations

from dataclasses import dataclass

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


def propagate(feats: torch.Tensor, first_labels: torch.Tensor,
              config: PropagationConfig | None = None) -> torch.Tensor:
    """Propagate ``first_labels`` through a video.

    Args:
        feats: ``(T, C, h, w)`` per-frame features (normalised here along ``C``).
        first_labels: ``(K, h, w)`` labels of frame 0 (one-hot masks or heat-maps).

    Returns:
        ``(T, K, h, w)``: frame 0's labels, then the propagated ones.
    """
    cfg = (config or PropagationConfig()).validate()
    if feats.dim() != 4 or first_labels.dim() != 3 or first_labels.shape[1:] != feats.shape[2:]:
        raise ConfigError(f"propagate takes feats (T, C, h, w) and labels (K, h, w) of the same "
                          f"h, w; got {tuple(feats.shape)} and {tuple(first_labels.shape)}")
    t_len, c, h, w = feats.shape
    n = h * w
    feats = F.normalize(feats.float(), dim=1).reshape(t_len, c, n)
    labels = torch.zeros(t_len, first_labels.shape[0], n, device=feats.device)
    labels[0] = first_labels.reshape(first_labels.shape[0], n).to(feats.device).float()
    allowed = radius_mask(h, w, cfg.radius, feats.device)
    for t in range(1, t_len):
        ctx = [0] + [s for s in range(max(1, t - cfg.num_context), t)]
        m = len(ctx)
        ctx_f = feats[ctx].permute(1, 0, 2).reshape(c, m * n)  # (C, M*n)
        ctx_l = labels[ctx].permute(1, 0, 2).reshape(-1, m * n)  # (K, M*n)
        chunk = max(1, cfg.max_pairs // (m * n))
        k = min(cfg.topk, m * n)
        for j0 in range(0, n, chunk):
            j1 = min(n, j0 + chunk)
            aff = ctx_f.t() @ feats[t][:, j0:j1] / cfg.temperature  # (M*n, J)
            if m > 1:  # the radius limits the short-term frames; frame 0 (rows :n) is global
                aff[n:].masked_fill_(~allowed[:, j0:j1].repeat(m - 1, 1), float("-inf"))
            vals, idx = aff.topk(k, dim=0)  # (k, J)
            weights = torch.softmax(vals, dim=0)  # cells outside the radius get weight 0
            gathered = ctx_l[:, idx]  # (K, k, J)
            labels[t, :, j0:j1] = (gathered * weights.unsqueeze(0)).sum(1)
    return labels.reshape(t_len, -1, h, w)


# ------------------------------------------------------------------------------------ VOS --
def masks_to_labels(mask: np.ndarray, object_ids: list[int], size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` label map -> ``(1 + K, h, w)`` soft one-hot (background first), area-
    downsampled to the feature size."""
    m = torch.as_tensor(np.asarray(mask))
    onehot = torch.stack([(m == 0)] + [(m == k) for k in object_ids]).float().unsqueeze(0)
    return F.interpolate(onehot, size=size, mode="area")[0]


def propagate_masks(feats: torch.Tensor, first_mask: np.ndarray,
                    config: PropagationConfig | None = None) -> np.ndarray:
    """Semi-supervised VOS: ``first_mask`` ``(H, W)`` (0 = background, k = object k) through
    ``feats`` ``(T, C, h, w)``; returns ``int64 (T, H, W)`` label maps (frame 0 = the given)."""
    first_mask = np.asarray(first_mask)
    ids = [int(k) for k in np.unique(first_mask) if k != 0]
    h, w = feats.shape[-2:]
    soft = propagate(feats, masks_to_labels(first_mask, ids, (h, w)), config)
    lut = torch.tensor([0] + ids, dtype=torch.int64)
    out = np.empty((soft.shape[0], *first_mask.shape), dtype=np.int64)
    out[0] = first_mask
    for t in range(1, soft.shape[0]):  # frame by frame: full-resolution soft labels are large
        up = F.interpolate(soft[t:t + 1], size=first_mask.shape, mode="bilinear",
                           align_corners=False)
        out[t] = lut[up[0].argmax(0).cpu()].numpy()
    return out


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
