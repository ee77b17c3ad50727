"""Association head (UniTrack, on JDE's tracker): MOT boxes and MOTS masks.

Per frame, each detection becomes a set of L2-normalised feature vectors: the RoI-aligned
``roi_size x roi_size`` grid of its box (``torchvision.ops.roi_align`` on the stride-8 map), or,
for masks, the feature cells the mask covers (mask pooling). Tracks keep such a set (boxes: an
exponential moving average, momentum 0.9; masks: the latest set).

Matching, as in UniTrack / JDE:

1. tracked + lost tracks vs detections: **reconstruction similarity** (UniTrack's
   ``reconsdot_distance``, "cross-softmax reconstruction"): the affinities of every track cell
   to *all* detection cells of the frame go through one softmax (``temperature`` 0.01, i.e.
   UniTrack's ``tmp=100``), and each track is rebuilt from each detection with its share of
   those weights (and every detection from each track with a softmax over all track cells);
   the similarity is the cosine between a set and its reconstruction, each flattened to one
   vector, averaged over both directions (``reconstruction="joint"``). A detection that another
   detection explains better takes less weight, so it rebuilds the track less well.
   ``reconstruction="pair"`` is the per-pair variant: a softmax within each (track, detection)
   pair and the mean per-cell cosine. Cost ``1 - similarity``,
   fused with the Kalman motion cost: ``lambda * app + (1 - lambda) * mahalanobis^2``
   (``lambda = 0.98``), pairs outside the 95% chi-square gate forbidden (``motion="full"``,
   JDE's and UniTrack's choice; ``"position"`` gates the box centre only, ``"none"`` uses
   appearance alone); gated Hungarian matching at 0.7 (``lap.lapjv(cost_limit=0.7)``, or
   ``scipy.optimize.linear_sum_assignment`` on the same problem padded with dummy rows and
   columns at cost 0.35);
2. the remaining *tracked* tracks vs remaining detections on ``1 - IoU`` (IoU >= 0.5);
3. tentative tracks (born last frame) vs the rest on IoU (>= 0.3); unmatched tentative tracks
   are dropped;
4. leftover detections with ``score >= det_threshold`` start tracks (confirmed at once on the
   first frame, else tentative until matched again); tracks lost for more than ``max_lost``
   frames are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError, MissingDependencyError
from vidssl.track.kalman import CHI2_95, CHI2_95_2DOF, KalmanFilter, xyah_to_xywh, xywh_to_xyah

INF_COST = 1e5


@dataclass
class AssociationConfig:
    """Association settings (``association.*`` in ``vidssl track`` configs)."""

    lambda_app: float = 0.98
    match_threshold: float = 0.7
    iou_threshold: float = 0.5
    tentative_iou: float = 0.3
    max_lost: int = 30
    roi_size: int = 4
    temperature: float = 0.01  # reconstruction softmax (UniTrack: tmp=100)
    reconstruction: str = "joint"  # joint (UniTrack's cross-softmax) | pair (per-pair softmax)
    feature_momentum: float = 0.9
    det_threshold: float = 0.3
    min_score: float = 0.0
    solver: str = "scipy"
    motion: str = "full"  # full | position | none: what the Kalman cost and gate look at

    def validate(self) -> "AssociationConfig":
        for key in ("lambda_app", "iou_threshold", "tentative_iou", "feature_momentum"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"association.{key} must be in [0, 1], got {getattr(self, key)}")
        if not self.match_threshold > 0 or not self.temperature > 0:
            raise ConfigError("association.match_threshold and temperature must be > 0")
        if not isinstance(self.max_lost, int) or self.max_lost < 0:
            raise ConfigError(f"association.max_lost must be >= 0, got {self.max_lost!r}")
        if not isinstance(self.roi_size, int) or self.roi_size < 1:
            raise ConfigError(f"association.roi_size must be >= 1, got {self.roi_size!r}")
        if self.motion not in ("full", "position", "none"):
            raise ConfigError(f"association.motion must be full, position or none, got "
                              f"{self.motion!r}")
        if self.reconstruction not in ("joint", "pair"):
            raise ConfigError(f"association.reconstruction must be 'joint' or 'pair', got "
                              f"{self.reconstruction!r}")
        if self.solver not in ("scipy", "lap"):
            raise ConfigError(f"association.solver must be 'scipy' or 'lap', got {self.solver!r}")
        return self


# -------------------------------------------------------------------------------- features --
def roi_features(fmap: torch.Tensor, boxes: np.ndarray, stride: int, size: int = 4
                 ) -> torch.Tensor:
    """RoI-aligned sets: ``fmap`` ``(C, h, w)``, ``boxes`` ``(N, 4)`` ``(x, y, w, h)`` pixels
    -> ``(N, size*size, C)``, L2-normalised per vector."""
    from torchvision.ops import roi_align

    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), device=fmap.device)
    if len(b) == 0:
        return fmap.new_zeros(0, size * size, fmap.shape[0])
    rois = torch.cat([b.new_zeros(len(b), 1), b[:, :2], b[:, :2] + b[:, 2:]], 1)
    out = roi_align(fmap[None].float(), rois, (size, size), spatial_scale=1.0 / stride,
                    sampling_ratio=2, aligned=True)  # (N, C, s, s)
    return F.normalize(out.flatten(2).transpose(1, 2), dim=-1)


def mask_features(fmap: torch.Tensor, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-pooled sets: ``masks`` ``(N, H, W)`` bool -> ``(N, n_max, C)`` normalised vectors of
    the cells each mask covers by > 0.5 (at least its best cell) and ``(N, n_max)`` validity."""
    c, h, w = fmap.shape
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32), device=fmap.device)
    if len(m) == 0:
        return fmap.new_zeros(0, 1, c), torch.zeros(0, 1, dtype=torch.bool, device=fmap.device)
    cover = F.interpolate(m[:, None], size=(h, w), mode="area")[:, 0].flatten(1)  # (N, h*w)
    keep = cover > 0.5
    keep[torch.arange(len(m)), cover.argmax(1)] = True
    n_max = int(keep.sum(1).max())
    vecs = F.normalize(fmap.float().flatten(1).t(), dim=-1)  # (h*w, C)
    out = fmap.new_zeros(len(m), n_max, c, dtype=torch.float32)
    valid = torch.zeros(len(m), n_max, dtype=torch.bool, device=fmap.device)
    for i in range(len(m)):
        idx = keep[i].nonzero()[:, 0]
        out[i, :len(idx)] = vecs[idx]
        valid[i, :len(idx)] = True
    return out, valid


def reconstruction_similarity(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.01,
                              a_valid: torch.Tensor | None = None,
                              b_valid: torch.Tensor | None = None, mode: str = "joint"
                              ) -> torch.Tensor:
    """UniTrack's reconstruction similarity of every pair of sets.

    Args:
        a: ``(P, m, C)`` (tracks), b: ``(Q, n, C)`` (detections): L2-normalised vectors;
            ``*_valid``: ``(P, m)`` / ``(Q, n)`` masks of real vectors (padding otherwise).
        temperature: of the reconstruction softmax (UniTrack: 0.01).
        mode: ``"joint"`` (UniTrack's ``reconsdot_distance``): one softmax of
            ``a . b / temperature`` over *all* cells of all the ``b`` sets (and, the other way,
            over all cells of all the ``a`` sets); set ``p`` is rebuilt from set ``q`` with
            the weights that fall on ``q``'s cells, and the similarity is the cosine between
            the set and its reconstruction, each flattened to one vector. ``"pair"``: the
            softmax runs over the other set of the pair only, and the similarity is the mean
            per-cell cosine.

    Returns:
        ``(P, Q)``: the similarity of each pair, averaged over both directions.
    """
    p, m, c = a.shape
    q, n, _ = b.shape
    av = a_valid if a_valid is not None else torch.ones(p, m, dtype=torch.bool, device=a.device)
    bv = b_valid if b_valid is not None else torch.ones(q, n, dtype=torch.bool, device=b.device)
    if p == 0 or q == 0:
        return a.new_zeros(p, q)
    if mode not in ("joint", "pair"):
        raise ConfigError(f"reconstruction mode must be 'joint' or 'pair', got {mode!r}")
    s = torch.einsum("pmc,qnc->pqmn", a, b) / temperature
    neg = torch.finfo(s.dtype).min
    if mode == "pair":
        w_ab = torch.softmax(s.masked_fill(~bv[None, :, None, :], neg), dim=3)
        w_ba = torch.softmax(s.masked_fill(~av[:, None, :, None], neg), dim=2)
        a_rec = torch.einsum("pqmn,qnc->pqmc", w_ab, b)
        b_rec = torch.einsum("pqmn,pmc->pqnc", w_ba, a)
        cos_a = F.cosine_similarity(a_rec, a[:, None], dim=-1)  # (P, Q, m)
        cos_b = F.cosine_similarity(b_rec, b[None], dim=-1)  # (P, Q, n)
        am, bm = av[:, None].float(), bv[None].float()
        sim_a = (cos_a * am).sum(-1) / am.sum(-1).clamp(min=1)
        sim_b = (cos_b * bm).sum(-1) / bm.sum(-1).clamp(min=1)
        return (sim_a + sim_b) / 2
    # joint: softmax over all (q, n) for each (p, m), and over all (p, m) for each (q, n)
    s = s.permute(0, 2, 1, 3)  # (P, m, Q, n)
    w_ab = torch.softmax(s.masked_fill(~bv[None, None], neg).reshape(p, m, q * n), dim=2)
    w_ba = torch.softmax(s.masked_fill(~av[:, :, None, None], neg).reshape(p * m, q, n), dim=0)
    a_rec = torch.einsum("pmqn,qnc->pqmc", w_ab.reshape(p, m, q, n), b)
    b_rec = torch.einsum("pmqn,pmc->pqnc", w_ba.reshape(p, m, q, n), a)
    a_rec = a_rec * av[:, None, :, None]  # padding neither counts nor is rebuilt
    b_rec = b_rec * bv[None, :, :, None]
    a0, b0 = a * av[..., None], b * bv[..., None]

    def flat_cos(x: torch.Tensor, rec: torch.Tensor, x_dims: str) -> torch.Tensor:
        dot = torch.einsum(f"{x_dims}kc,pqkc->pq", x, rec)
        norm_x = x.flatten(1).norm(dim=1)
        norm_x = norm_x[:, None] if x_dims == "p" else norm_x[None]
        return dot / (norm_x * rec.flatten(2).norm(dim=2)).clamp(min=1e-12)

    return (flat_cos(a0, a_rec, "p") + flat_cos(b0, b_rec, "q")) / 2


# -------------------------------------------------------------------------------- matching --
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``(len(a), len(b))`` of ``(x, y, w, h)`` boxes."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def linear_assignment(cost: np.ndarray, threshold: float, solver: str = "scipy"
                      ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Gated Hungarian matching: the minimum-cost assignment in which leaving a row or a
    column unmatched costs ``threshold / 2`` (so a pair is worth matching only below
    ``threshold``), i.e. ``lap.lapjv(cost, extend_cost=True, cost_limit=threshold)`` as JDE and
    UniTrack call it. ``scipy`` solves the same problem on the cost matrix padded with dummy
    rows and columns (``threshold / 2`` to a dummy, 0 between dummies) -- not the full
    assignment filtered afterwards, which can trade a cheap pair for two pairs that are then
    dropped. Returns the matches and the unmatched rows and columns."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    if solver == "lap":
        try:
            import lap
        except ImportError:
            raise MissingDependencyError(package="lap", extra="track",
                                         feature="association.solver=lap") from None
        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=threshold)
        pairs = [(i, int(j)) for i, j in enumerate(x) if j >= 0]
    else:
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            raise MissingDependencyError(package="scipy", extra="track",
                                         feature="Hungarian matching") from None

        padded = np.full((rows + cols, cols + rows), threshold / 2.0)
        padded[rows:, cols:] = 0.0
        padded[:rows, :cols] = np.minimum(cost, INF_COST)
        r, c = linear_sum_assignment(padded)
        pairs = [(int(i), int(j)) for i, j in zip(r, c) if i < rows and j < cols]
    matches = [(i, j) for i, j in pairs if cost[i, j] <= threshold]
    mr = {i for i, _ in matches}
    mc = {j for _, j in matches}
    return matches, [i for i in range(rows) if i not in mr], [j for j in range(cols) if j not in mc]


# -------------------------------------------------------------------------------- tracker --
@dataclass
class Track:
    track_id: int
    mean: np.ndarray
    cov: np.ndarray
    feat: torch.Tensor
    valid: torch.Tensor
    state: str  # "tentative" | "tracked" | "lost"
    last_frame: int
    box: np.ndarray
    hits: int = 1
    history: list = field(default_factory=list)


class AssociationTracker:
    """Online multi-object tracker; call :meth:`step` once per frame.

    Args:
        config: :class:`AssociationConfig`.
    """

    def __init__(self, config: AssociationConfig | None = None):
        self.cfg = (config or AssociationConfig()).validate()
        self.kf = KalmanFilter()
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 1

    def _appearance_cost(self, tracks: list[Track], feats: torch.Tensor, valid: torch.Tensor
                         ) -> np.ndarray:
        if not tracks or len(feats) == 0:
            return np.zeros((len(tracks), len(feats)))
        n = max(t.feat.shape[0] for t in tracks)
        c = feats.shape[-1]
        a = feats.new_zeros(len(tracks), n, c)
        av = torch.zeros(len(tracks), n, dtype=torch.bool, device=feats.device)
        for i, t in enumerate(tracks):
            a[i, :t.feat.shape[0]] = t.feat
            av[i, :t.feat.shape[0]] = t.valid
        sim = reconstruction_similarity(a, feats, self.cfg.temperature, av, valid,
                                        self.cfg.reconstruction)
        return (1.0 - sim).cpu().numpy().astype(np.float64)

    def _fuse_motion(self, cost: np.ndarray, tracks: list[Track], boxes: np.ndarray) -> np.ndarray:
        if self.cfg.motion == "none":
            return cost
        meas = xywh_to_xyah(boxes)
        lam = self.cfg.lambda_app
        only_position = self.cfg.motion == "position"
        gate = CHI2_95_2DOF if only_position else CHI2_95
        for i, t in enumerate(tracks):
            d = self.kf.gating_distance(t.mean, t.cov, meas, only_position)
            cost[i] = lam * cost[i] + (1 - lam) * d
            cost[i, d > gate] = INF_COST
        return cost

    def _update(self, t: Track, box: np.ndarray, feat: torch.Tensor, valid: torch.Tensor,
                fixed_grid: bool) -> None:
        t.mean, t.cov = self.kf.update(t.mean, t.cov, xywh_to_xyah(box))
        mom = self.cfg.feature_momentum
        if fixed_grid and t.feat.shape == feat.shape:
            t.feat = F.normalize(mom * t.feat + (1 - mom) * feat, dim=-1)
        else:
            t.feat, t.valid = feat, valid
        t.box, t.last_frame, t.hits = np.asarray(box, dtype=np.float64), self.frame, t.hits + 1
        t.state = "tracked"

    def step(self, boxes: np.ndarray, scores: np.ndarray, feats: torch.Tensor,
             valid: torch.Tensor | None = None) -> list[tuple[int, np.ndarray, int]]:
        """Advance one frame.

        Args:
            boxes: ``(N, 4)`` detections ``(x, y, w, h)``; scores: ``(N,)``.
            feats: ``(N, n, C)`` normalised feature sets; valid: ``(N, n)`` (default: all).

        Returns:
            ``[(track_id, box_xywh, detection_index), ...]`` of the confirmed tracks matched in
            this frame.
        """
        cfg = self.cfg
        self.frame += 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        fixed_grid = valid is None
        if valid is None:
            valid = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        keep = np.nonzero(scores >= cfg.min_score)[0]
        det_ids = list(keep)
        for t in self.tracks:
            t.mean, t.cov = self.kf.predict(t.mean, t.cov)
        matched: list[tuple[Track, int]] = []

        pool = [t for t in self.tracks if t.state in ("tracked", "lost")]
        sub = torch.as_tensor(det_ids, dtype=torch.long)
        cost = self._appearance_cost(pool, feats[sub], valid[sub])
        cost = self._fuse_motion(cost, pool, boxes[det_ids]) if pool and det_ids else cost
        m, u_tr, u_det = linear_assignment(cost, cfg.match_threshold, cfg.solver)
        matched += [(pool[i], det_ids[j]) for i, j in m]
        det_ids = [det_ids[j] for j in u_det]
        rest = [pool[i] for i in u_tr if pool[i].state == "tracked"]

        iou = iou_matrix([t.box for t in rest], boxes[det_ids]) if rest and det_ids \
            else np.zeros((len(rest), len(det_ids)))
        m, u_tr, u_det = linear_assignment(1 - iou, 1 - cfg.iou_threshold, cfg.solver)
        matched += [(rest[i], det_ids[j]) for i, j in m]
        det_ids = [det_ids[j] for j in u_det]
        for i in u_tr:
            rest[i].state = "lost"

        tentative = [t for t in self.tracks if t.state == "tentative"]
        iou = iou_matrix([t.box for t in tentative], boxes[det_ids]) if tentative and det_ids \
            else np.zeros((len(tentative), len(det_ids)))
        m, u_tr, u_det = linear_assignment(1 - iou, 1 - cfg.tentative_iou, cfg.solver)
        matched += [(tentative[i], det_ids[j]) for i, j in m]
        dropped = {id(tentative[i]) for i in u_tr}
        det_ids = [det_ids[j] for j in u_det]

        for t, j in matched:
            self._update(t, boxes[j], feats[j], valid[j], fixed_grid)
        for j in det_ids:
            if scores[j] < cfg.det_threshold:
                continue
            mean, cov = self.kf.initiate(xywh_to_xyah(boxes[j]))
            t = Track(self._next_id, mean, cov, feats[j], valid[j],
                      "tracked" if self.frame == 1 else "tentative", self.frame, boxes[j].copy())
            self._next_id += 1
            self.tracks.append(t)
            matched.append((t, j))
        self.tracks = [t for t in self.tracks if id(t) not in dropped and not (
            t.state == "lost" and self.frame - t.last_frame > cfg.max_lost)]
        return [(t.track_id, t.box.copy(), j) for t, j in matched if t.state == "tracked"]

    def predicted_boxes(self) -> list[tuple[int, np.ndarray]]:
        """Kalman boxes of the live tracks (for drawing)."""
        return [(t.track_id, xyah_to_xywh(t.mean[:4])) for t in self.tracks]
