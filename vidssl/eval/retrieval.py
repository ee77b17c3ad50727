"""Video retrieval: each test video queries the train gallery by cosine similarity.

``hit@k`` is the fraction of queries with at least one video of their own class among the
``k`` most similar gallery videos, for ``k`` in (1, 5, 10, 20, 50) (the protocol of Xu et al.,
CVPR 2019, VCOP, followed by most video SSL papers; ``k`` larger than the gallery is capped at
its size). **Centring** is an option, off by default: with ``center=True`` (``"gallery"``) the
gallery mean (train only) is subtracted from gallery and queries before L2 normalisation; with
``"each"`` each set is centred by its own mean (CoCLR's released retrieval); results must say
which was used (``RetrievalResult.centered``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from vidssl.eval.linear import ArrayLike, as_tensor, l2_normalize

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50)


@dataclass
class RetrievalResult:
    hits: dict[int, float]   # k -> hit@k (fraction)
    centered: bool | str
    gallery_size: int
    query_size: int
    first_hit: np.ndarray | None = field(default=None, repr=False)  # per query: rank of the first same-class video

    def metrics(self) -> dict[str, float]:
        return {f"hit@{k}": v for k, v in self.hits.items()}

    def outcomes(self) -> dict[str, np.ndarray]:
        """``hit@k`` as per-query 0/1 arrays (their means are :meth:`metrics`)."""
        return {f"hit@{k}": (self.first_hit < min(k, self.gallery_size)).astype(np.float64)
                for k in self.hits}


CENTERING = ("none", "gallery", "each")


def retrieval_hits(gallery_x: ArrayLike, gallery_y: ArrayLike, query_x: ArrayLike,
                   query_y: ArrayLike, *, ks: Sequence[int] = DEFAULT_KS, center: bool | str = False,
                   chunk_size: int = 1024) -> RetrievalResult:
    """``hit@k`` of queries against the gallery.

    ``center``: ``False``/``"none"`` (cosine of the raw features), ``True``/``"gallery"``
    (subtract the gallery mean from both sets) or ``"each"`` (each set centred by its own mean,
    as CoCLR's ``main_classifier.py --retrieval`` does). L2 normalisation follows the centring.

    Shapes: ``gallery_x`` ``(N, D)``, ``gallery_y`` ``(N,)``, ``query_x`` ``(Q, D)``,
    ``query_y`` ``(Q,)``.
    """
    mode = {False: "none", True: "gallery"}.get(center, center) if isinstance(center, bool) else center
    if mode not in CENTERING:
        raise ValueError(f"center must be one of {CENTERING} (or a bool), got {center!r}")
    g, q = as_tensor(gallery_x), as_tensor(query_x)
    if mode == "gallery":
        mean = g.mean(dim=0, keepdim=True)
        g, q = g - mean, q - mean
    elif mode == "each":
        g, q = g - g.mean(dim=0, keepdim=True), q - q.mean(dim=0, keepdim=True)
    g, q = l2_normalize(g), l2_normalize(q)
    gy = torch.as_tensor(np.asarray(gallery_y), dtype=torch.int64)
    qy = torch.as_tensor(np.asarray(query_y), dtype=torch.int64)
    ks = sorted({int(k) for k in ks})
    kmax = min(ks[-1], len(g))
    first_hit = torch.empty(len(q), dtype=torch.int64)   # rank of the first same-class video
    for start in range(0, len(q), chunk_size):
        idx = (q[start:start + chunk_size] @ g.T).topk(kmax, dim=1).indices
        same = gy[idx] == qy[start:start + chunk_size, None]
        rank = torch.where(same.any(dim=1), same.float().argmax(dim=1), torch.tensor(kmax))
        first_hit[start:start + chunk_size] = rank
    hits = {k: (first_hit < min(k, len(g))).float().mean().item() for k in ks}
    return RetrievalResult(hits, mode if mode == "each" else mode == "gallery", len(g), len(q),
                           first_hit.numpy())


def run_retrieval_preset(split, preset, s) -> dict[str, np.ndarray]:
    """Protocol runner of the retrieval presets (``retrieval:coclr``, ``retrieval:tclr``): the
    preset's own views (:class:`~vidssl.eval.views.ViewSpec`) and pooling from the evaluation's
    feature cache, then :func:`retrieval_hits` with its centring."""
    from vidssl.eval.views import ViewSpec

    views = ViewSpec(clip_len=s.clip_len, stride=s.stride, size=s.size, resize_size=s.resize_size,
                     num_clips=s.num_clips, num_crops=s.num_crops, layout=s.layout,
                     window_step=s.window_step, max_clips=s.max_clips)
    pooling = s.pooling + ("_l2" if s.normalize_views else "")
    fs = split.context.cache.features(split.split, views, pooling=pooling)
    tr, te = fs.select(split.train), fs.select(split.test)
    split.videos = list(te.paths)
    split.counts[f"{preset.name}_test_used"] = len(te)
    return retrieval_hits(tr.features, tr.labels, te.features, te.labels, ks=s.ks, center=s.center).outcomes()
