"""Weighted k-nearest-neighbour classification on cosine similarity.

Each test video queries the train set: features are L2-normalised, similarity ``s`` is the dot
product, the ``k`` most similar train videos (``k = 20``) vote for their labels with weight
``exp(s / tau)``, ``tau = 0.07``. This is the InstDisc convention (Wu et al., 2018, section
3.4; ``tau`` from their NCE) used by DINO's ``eval_knn.py`` (``T = 0.07``, ``k = 20``); the
class scores are the summed weights, top-1 / top-5 are read from them (a class with no vote
scores 0 and ties are broken by the lower class id, as in DINO). Features are not mean-centred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vidssl.eval.linear import ArrayLike, l2_normalize, topk_hits


def knn_scores(train_x: ArrayLike, train_y: ArrayLike, query_x: ArrayLike, *, k: int = 20,
               temperature: float = 0.07, num_classes: int | None = None,
               chunk_size: int = 1024) -> torch.Tensor:
    """Temperature-weighted kNN votes. Shapes: ``(N, D)``, ``(N,)``, ``(Q, D)`` -> ``(Q, C)``."""
    gallery, queries = l2_normalize(train_x), l2_normalize(query_x)
    labels = torch.as_tensor(np.asarray(train_y), dtype=torch.int64)
    num_classes = int(num_classes or int(labels.max()) + 1)
    k = min(int(k), len(gallery))
    out = torch.zeros(len(queries), num_classes)
    for start in range(0, len(queries), chunk_size):
        sim = queries[start:start + chunk_size] @ gallery.T             # (q, N)
        top_sim, top_idx = sim.topk(k, dim=1)                           # (q, k)
        weights = (top_sim / temperature).exp()
        out[start:start + chunk_size].scatter_add_(1, labels[top_idx], weights)
    return out


@dataclass
class KNNResult:
    top1: float
    top5: float
    k: int
    temperature: float
    predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    hits: dict[int, np.ndarray] = field(repr=False, default_factory=dict)   # k -> per query 0/1

    def metrics(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5}

    def outcomes(self) -> dict[str, np.ndarray]:
        """Top-1 / top-5 as per-test-video 0/1 arrays (their means are :meth:`metrics`)."""
        return {"top1": self.hits[1], "top5": self.hits[5]}


def knn_classify(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                 k: int = 20, temperature: float = 0.07, num_classes: int | None = None) -> KNNResult:
    """Top-1 / top-5 of weighted kNN (see the module docstring) of test against train."""
    ytr, yte = np.asarray(train_y, dtype=np.int64), np.asarray(test_y, dtype=np.int64)
    num_classes = int(num_classes or max(ytr.max(), yte.max() if len(yte) else 0) + 1)
    scores = knn_scores(train_x, ytr, test_x, k=k, temperature=temperature, num_classes=num_classes)
    hits = topk_hits(scores, yte, (1, 5))
    return KNNResult(float(hits[1].mean()), float(hits[5].mean()), min(k, len(ytr)), temperature,
                     scores.argmax(dim=1).numpy(), hits)
