"""Video retrieval: each test video queries the train gallery by cosine similarity.

``hit@k`` is the fraction of queries with at least one video of their own class among the
``k`` most similar gallery videos, for ``k`` in (1, 5, 10, 20, 50) (the protocol of Xu et al.,
CVPR 2019, VCOP, followed by most video SSL papers; ``k`` larger than the gallery is capped at
its size). **Centring** is an option, off by default: with ``center=True`` the gallery mean
(train only) is subtracted from gallery and queries before L2 normalisation; results must say
which was used (``RetrievalResult.centered``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vidssl.eval.linear import ArrayLike, as_tensor, l2_normalize

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50)


@dataclass
class RetrievalResult:
    hits: dict[int, float]   # k -> hit@k (fraction)
    centered: bool
    gallery_size: int
    query_size: int

    def metrics(self) -> dict[str, float]:
        return {f"hit@{k}": v for k, v in self.hits.items()}


def retrieval_hits(gallery_x: ArrayLike, gallery_y: ArrayLike, query_x: ArrayLike,
                   query_y: ArrayLike, *, ks: Sequence[int] = DEFAULT_KS, center: bool = False,
                   chunk_size: int = 1024) -> RetrievalResult:
    """``hit@k`` of queries against the gallery.

    Shapes: ``gallery_x`` ``(N, D)``, ``gallery_y`` ``(N,)``, ``query_x`` ``(Q, D)``,
    ``query_y`` ``(Q,)``.
    """
    g, q = as_tensor(gallery_x), as_tensor(query_x)
    if center:
        mean = g.mean(dim=0, keepdim=True)
        g, q = g - mean, q - mean
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
    return RetrievalResult(hits, bool(center), len(g), len(q))
