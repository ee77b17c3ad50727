"""Alignment, uniformity and effective rank against direct formulas; factor probes."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from vidssl.eval.config import DiagnosticsConfig
from vidssl.eval.diagnostics import (alignment, appearance_factors, diagnose, effective_rank,
                                     factor_probes, read_metadata, uniformity)
from vidssl.eval.features import FeatureSet


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_matches_the_formula():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    expected = np.mean(np.sum((_unit(a) - _unit(b)) ** 2, axis=1))
    assert alignment(a, b) == pytest.approx(expected, rel=1e-5)
    assert alignment(a, 3 * a) == pytest.approx(0.0, abs=1e-6)      # same direction
    assert alignment(a, -a) == pytest.approx(4.0, rel=1e-6)           # antipodal


def test_uniformity_matches_the_formula():
    rng = np.random.default_rng(1)
    z = _unit(rng.standard_normal((25, 3)))
    pairs = [np.exp(-2 * np.sum((z[i] - z[j]) ** 2)) for i in range(25) for j in range(i + 1, 25)]
    assert uniformity(z) == pytest.approx(math.log(np.mean(pairs)), rel=1e-6)
    assert uniformity(np.ones((10, 3))) == pytest.approx(0.0, abs=1e-12)   # collapsed
    # two antipodal points: log exp(-2 * 4) = -8
    assert uniformity(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(-8.0)
    assert uniformity(z, max_points=10) != uniformity(z)   # subsampled


def test_effective_rank_isotropic_rank1_and_by_hand():
    rng = np.random.default_rng(2)
    assert effective_rank(rng.standard_normal((20000, 8))) == pytest.approx(8.0, rel=0.01)
    v = rng.standard_normal(8)
    assert effective_rank(rng.standard_normal((500, 1)) * v) == pytest.approx(1.0, abs=1e-6)
    # covariance eigenvalues proportional to (4, 4, 1, 1): exp(entropy of (.4, .4, .1, .1))
    x = rng.standard_normal((4000, 4))
    x = (x - x.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(x.T)).T)   # whiten exactly
    x = x * np.array([2.0, 2.0, 1.0, 1.0])
    p = np.array([0.4, 0.4, 0.1, 0.1])
    assert effective_rank(x) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert effective_rank(np.zeros((5, 3))) == 0.0


def test_appearance_factors_kinds(small_synthetic):
    records = list(read_metadata(small_synthetic).values())
    factors = {f.name: f for f in appearance_factors(records)}
    assert factors["shape"].kind == "categorical" and factors["background"].kind == "categorical"
    assert factors["direction"].kind == "categorical" and set(factors["direction"].classes) == {"-1", "1"}
    assert factors["size"].kind == "continuous" and factors["size"].values.shape == (len(records), 1)
    assert factors["color"].values.shape == (len(records), 3)
    # angles are (cos, sin); the stripes' angle has period pi, so it is doubled
    a = np.array([r["appearance"]["texture_angle"] for r in records])
    np.testing.assert_allclose(factors["texture_angle"].values, np.stack([np.cos(2 * a), np.sin(2 * a)], 1))
    assert "bg_noise_seed" not in factors      # an identifier, not a factor
    assert "palette" not in factors            # constant at appearance_correlation = 0


def _planted_features(root, paths, labels, groups) -> FeatureSet:
    """Features that encode the action one-hot and the object size, and nothing else."""
    meta = read_metadata(root)
    recs = [meta[os.path.realpath(p)] for p in paths]
    size = np.array([r["appearance"]["size"] for r in recs])
    x = np.concatenate([np.eye(3)[labels] * 5.0, 50 * (size[:, None] - size.mean()),
                        np.ones((len(paths), 1))], 1)
    return FeatureSet(torch.as_tensor(x, dtype=torch.float32), np.asarray(labels), np.asarray(groups),
                      list(paths), np.arange(len(paths)))


def test_factor_probes_find_what_is_encoded(small_synthetic):
    from vidssl.data.index import build_index

    tr = build_index("synthetic", small_synthetic, split=1, subset="train", progress=False)
    te = build_index("synthetic", small_synthetic, split=1, subset="test", progress=False)
    train = _planted_features(small_synthetic, tr.paths, tr.labels, tr.groups)
    test = _planted_features(small_synthetic, te.paths, te.labels, te.groups)
    probes = factor_probes(train, test, small_synthetic, DiagnosticsConfig(max_iter=100))
    assert probes["action"]["acc"] == 1.0 and probes["action"]["chance"] == pytest.approx(1 / 3)
    assert probes["size"]["r2"] > 0.8         # encoded (through the L2 normalisation)
    assert probes["start_x"]["r2"] < 0.5      # not encoded
    assert set(probes["shape"]) == {"acc", "chance"}


def test_diagnose_uses_adjacent_clips_as_positives():
    rng = np.random.default_rng(3)
    clips = torch.as_tensor(rng.standard_normal((12, 4, 6)), dtype=torch.float32)
    fs = FeatureSet(clips.mean(1), np.zeros(12, np.int64), np.full(12, -1), [f"v{i}" for i in range(12)],
                    np.arange(12), clip_features=clips)
    res = diagnose(fs)
    expected = alignment(clips[:, :-1].reshape(-1, 6), clips[:, 1:].reshape(-1, 6))
    assert res.alignment == pytest.approx(expected)
    assert res.uniformity == pytest.approx(np.mean([uniformity(clips[:, k]) for k in range(4)]))
    assert res.dim == 6 and 1.0 <= res.effective_rank <= 6.0
    m = res.metrics()
    assert set(m) == {"alignment", "uniformity", "effective_rank", "effective_rank/dim"}
    pairs = (clips[:, 0], clips[:, 0] * 2)
    assert diagnose(fs, pairs=pairs).alignment == pytest.approx(0.0, abs=1e-6)
    no_clips = FeatureSet(clips.mean(1), fs.labels, fs.groups, fs.paths, fs.positions)
    assert math.isnan(diagnose(no_clips).alignment)
