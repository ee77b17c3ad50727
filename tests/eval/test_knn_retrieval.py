"""kNN votes and retrieval hit@k on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidssl.eval.knn import knn_classify, knn_scores
from vidssl.eval.retrieval import retrieval_hits

# Five unit vectors in 2-D and their labels.
GALLERY = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
LABELS = np.array([0, 1, 1, 0, 1])


def test_knn_votes_by_hand():
    # Query (0.8, 0.6): cosines 0.8, 0.6, -0.8, 0.96, 1.0; the 3 nearest are #4 (label 1, s=1.0),
    # #3 (label 0, s=0.96) and #0 (label 0, s=0.8).
    q = np.array([[4.0, 3.0]])   # not normalised: kNN normalises
    scores = knn_scores(GALLERY, LABELS, q, k=3, temperature=1.0, num_classes=2)
    assert scores[0, 0].item() == pytest.approx(math.exp(0.96) + math.exp(0.8), rel=1e-5)
    assert scores[0, 1].item() == pytest.approx(math.exp(1.0), rel=1e-5)
    # tau = 1: the majority (label 0) wins; tau = 0.07: the single closest neighbour wins.
    assert knn_classify(GALLERY, LABELS, q, [0], k=3, temperature=1.0).top1 == 1.0
    sharp = knn_scores(GALLERY, LABELS, q, k=3, temperature=0.07, num_classes=2)
    assert sharp[0, 1].item() == pytest.approx(math.exp(1.0 / 0.07), rel=1e-4)
    assert sharp[0, 0].item() == pytest.approx(math.exp(0.96 / 0.07) + math.exp(0.8 / 0.07), rel=1e-4)
    assert knn_classify(GALLERY, LABELS, q, [1], k=3, temperature=0.07).top1 == 1.0


def test_knn_k_larger_than_gallery_and_top5():
    res = knn_classify(GALLERY, LABELS, [[1.0, 0.1], [-1.0, 0.1]], [0, 1], k=20)
    assert res.k == 5 and res.top1 == 1.0 and res.top5 == 1.0


def test_knn_chunking_does_not_change_scores():
    rng = np.random.default_rng(0)
    g, y, q = rng.standard_normal((50, 6)), rng.integers(0, 4, 50), rng.standard_normal((33, 6))
    a = knn_scores(g, y, q, k=7, num_classes=4, chunk_size=5)
    b = knn_scores(g, y, q, k=7, num_classes=4)
    torch.testing.assert_close(a, b)


def test_retrieval_hits_by_hand():
    # Queries: (1, 0.05) ranks the gallery #0 (l0), #4 (l1), #3 (l0), #1 (l1), #2 (l1).
    # A label-1 query along (1, 0.05) first finds its class at rank 2; a label-0 one at rank 1;
    # a label-0 query along (-1, 0) ranks #2 (l1), #1 (l1), #3 (l0): first hit at rank 3.
    queries = np.array([[1.0, 0.05], [1.0, 0.05], [-1.0, 0.0]])
    res = retrieval_hits(GALLERY, LABELS, queries, [1, 0, 0], ks=(1, 2, 3, 5, 50))
    assert res.hits == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0, 5: 1.0, 50: 1.0})
    assert res.metrics()["hit@1"] == pytest.approx(1 / 3)
    assert res.centered is False and res.gallery_size == 5 and res.query_size == 3


def test_retrieval_centring_subtracts_the_gallery_mean():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((40, 5)) + 10.0   # a large common offset dominates cosine
    y = rng.integers(0, 3, 40)
    q = rng.standard_normal((20, 5)) + 10.0
    yq = rng.integers(0, 3, 20)
    centred = retrieval_hits(g, y, q, yq, ks=(1, 5), center=True)
    manual = retrieval_hits(g - g.mean(0), y, q - g.mean(0), yq, ks=(1, 5), center=False)
    assert centred.hits == manual.hits and centred.centered
    # the query's own copy in the gallery is found at rank 1 whether centred or not
    self_q = retrieval_hits(g, y, g[:10], y[:10], ks=(1,), center=True)
    assert self_q.hits[1] == 1.0
