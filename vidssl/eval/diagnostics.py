"""Representation diagnostics: geometry of the embedding, and *what* an encoder encodes.

- **Alignment** (Wang & Isola, ICML 2020): ``E ||f(x) - f(y)||_2^alpha`` over positive pairs of
  L2-normalised features, ``alpha = 2``; in ``[0, 4]``, lower = positives closer. The evaluation
  suite's positive pairs are two *adjacent* clips (of the ``K`` evenly spaced ones) of the same
  video; pass your own pairs (e.g. two augmentations) to :func:`diagnose`.
- **Uniformity** (same paper): ``log E_{i<j} exp(-t ||f(x_i) - f(x_j)||^2)``, ``t = 2``, over
  L2-normalised features of *different* videos; in ``[-4, 0]`` for ``t = 2`` (``-4``: all
  pairs antipodal; ``0``: collapsed to one point); lower = more uniform.
- **Effective rank** (Roy & Vetterli, EUSIPCO 2007) of the covariance of the L2-normalised
  video features: with eigenvalues ``lambda_i`` of the covariance, ``p_i = lambda_i / sum
  lambda``, ``erank = exp(-sum p_i log p_i)``; ``1`` for rank-1 data, ``D`` for isotropic data.
  (RankMe, Garrido et al. 2023, applies the same formula to the singular values of the
  feature matrix, ``sqrt(lambda_i)``, which gives a larger number for the same features.)
- **Factor probes** on the synthetic dataset: separate linear probes (train split -> test
  split) for the action class (the motion label) and for every appearance factor listed in
  ``metadata.jsonl``; categorical factors report accuracy and the chance level (the most
  frequent train value), continuous ones the test R² of a ridge regression.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vidssl.eval.config import DiagnosticsConfig
from vidssl.eval.features import FeatureSet
from vidssl.eval.linear import ArrayLike, l2_normalize, linear_probe, ridge_probe
from vidssl.errors import DatasetError, VidsslError

# Angles whose period is not 2*pi (stripes are symmetric under a half turn).
ANGLE_PERIODS: dict[str, float] = {"texture_angle": math.pi}
MAX_CATEGORICAL_INTS = 12  # an int factor with at most this many values is categorical


# ---------------------------------------------------------------------------- geometry --

def alignment(z1: ArrayLike, z2: ArrayLike, alpha: float = 2.0) -> float:
    """Mean ``||z1_i - z2_i||^alpha`` of L2-normalised rows. Shapes: ``(N, D)``, ``(N, D)``."""
    a, b = l2_normalize(z1), l2_normalize(z2)
    if a.shape != b.shape or len(a) == 0:
        raise VidsslError(f"alignment needs two equal, non-empty (N, D) arrays, got "
                          f"{tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: ArrayLike, t: float = 2.0, max_points: int | None = None, seed: int = 0) -> float:
    """``log`` of the mean Gaussian potential over pairs ``i < j`` of L2-normalised rows.

    Shape: ``(N, D)``, ``N >= 2``. Above ``max_points`` rows a fixed random subset is used.
    """
    x = l2_normalize(z).double()
    if len(x) < 2:
        raise VidsslError("uniformity needs at least two points")
    if max_points is not None and len(x) > max_points:
        keep = np.random.default_rng(seed).choice(len(x), max_points, replace=False)
        x = x[torch.as_tensor(np.sort(keep))]
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log().item()


def effective_rank(x: ArrayLike, center: bool = True) -> float:
    """Roy & Vetterli's effective rank of the covariance of the rows of ``x`` ``(N, D)``:
    ``exp`` of the entropy of its normalised eigenvalues (0 for an all-zero covariance)."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    eig = torch.linalg.svdvals(x).pow(2)          # covariance eigenvalues, up to 1 / (N - 1)
    total = eig.sum()
    if total <= 0:
        return 0.0
    p = eig[eig > 0] / total
    return math.exp(-(p * p.log()).sum().item())


# ----------------------------------------------------------------------------- factors --

@dataclass
class Factor:
    """One generative factor of a set of videos.

    Attributes:
        kind: ``"categorical"`` (``values`` int codes ``(N,)``, names in ``classes``) or
            ``"continuous"`` (``values`` float ``(N, P)``; angles as ``(cos, sin)``).
    """

    name: str
    kind: str
    values: np.ndarray
    classes: list[str] = field(default_factory=list)


def read_metadata(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``metadata.jsonl`` of a synthetic dataset, keyed by the real path of each video."""
    path = os.path.join(os.fspath(root), "metadata.jsonl")
    if not os.path.isfile(path):
        raise DatasetError(f"no metadata.jsonl in {root}: factor probes need the synthetic dataset")
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out[os.path.realpath(os.path.join(os.fspath(root), rec["path"]))] = rec
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DatasetError(f"{path}:{n}: bad metadata line ({err})") from None
    return out


def appearance_factors(records: list[dict[str, Any]]) -> list[Factor]:
    """Every varying field of ``record["appearance"]`` as a :class:`Factor` (same order as
    ``records``). Strings, booleans and ints with few values are categorical; floats, colour
    triples and angles are continuous; ``*seed`` fields (identifiers) and constants are left out."""
    if not records:
        return []
    keys = [k for k in records[0]["appearance"] if not k.endswith("seed")]
    factors = []
    for key in keys:
        raw = [r["appearance"].get(key) for r in records]
        if any(v is None for v in raw):
            continue
        first = raw[0]
        distinct = {json.dumps(v) for v in raw}
        if len(distinct) < 2:
            continue
        few_ints = all(isinstance(v, int) for v in raw) and len(distinct) <= MAX_CATEGORICAL_INTS
        if isinstance(first, (str, bool)) or few_ints:
            classes = sorted(distinct)
            code = {c: i for i, c in enumerate(classes)}
            factors.append(Factor(key, "categorical", np.array([code[json.dumps(v)] for v in raw]),
                                  [str(json.loads(c)) for c in classes]))
        elif isinstance(first, (int, float)) and "angle" in key:
            theta = np.asarray(raw, dtype=np.float64) * (2 * math.pi / ANGLE_PERIODS.get(key, 2 * math.pi))
            factors.append(Factor(key, "continuous", np.stack([np.cos(theta), np.sin(theta)], 1)))
        elif isinstance(first, (int, float, list)):
            factors.append(Factor(key, "continuous",
                                  np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)))
    return factors


def factor_probes(train: FeatureSet, test: FeatureSet, root: str | os.PathLike,
                  config: DiagnosticsConfig | None = None,
                  hits: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Linear probes (train -> test) for the action class and every appearance factor.

    Returns ``{name: {"acc", "chance"} or {"r2"}}``; ``"action"`` is the motion label. When
    ``hits`` is a dict, each categorical probe's per-test-video 0/1 outcome is stored in it
    under ``name`` (for intervals).
    """
    cfg = config or DiagnosticsConfig()
    meta = read_metadata(root)
    missing = [p for p in train.paths + test.paths if os.path.realpath(p) not in meta]
    if missing:
        raise DatasetError(f"{len(missing)} videos have no metadata.jsonl entry in {root} "
                           f"(first: {missing[0]})")
    records = [meta[os.path.realpath(p)] for p in train.paths + test.paths]
    n = len(train)
    targets = [Factor("action", "categorical", np.concatenate([train.labels, test.labels]))]
    targets += appearance_factors(records)
    out: dict[str, dict[str, float]] = {}
    for f in targets:
        tr, te = f.values[:n], f.values[n:]
        if f.kind == "categorical":
            res = linear_probe(train.features, tr, test.features, te, train_groups=train.groups,
                               num_classes=int(f.values.max()) + 1,
                               weight_decays=cfg.weight_decays, val_fraction=cfg.val_fraction,
                               seed=cfg.seed, max_iter=cfg.max_iter)
            majority = np.bincount(tr).argmax()
            out[f.name] = {"acc": res.top1, "chance": float(np.mean(te == majority))}
            if hits is not None:
                hits[f.name] = res.hits[1]
        else:
            res = ridge_probe(train.features, tr, test.features, te, train_groups=train.groups,
                              lambdas=cfg.ridge_lambdas, val_fraction=cfg.val_fraction,
                              seed=cfg.seed)
            out[f.name] = {"r2": res.r2}
    return out


# ---------------------------------------------------------------------------- protocol --

@dataclass
class DiagnosticsResult:
    alignment: float            # NaN when no positive pairs were available
    uniformity: float
    effective_rank: float
    dim: int
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    probe_hits: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # factor -> per test video 0/1

    def outcomes(self) -> dict[str, float | np.ndarray]:
        """:meth:`metrics` with each categorical probe's accuracy as a per-test-video array."""
        out: dict[str, float | np.ndarray] = dict(self.metrics())
        for name, values in self.probe_hits.items():
            out[f"probe/{name}/acc"] = values
        return out

    def metrics(self) -> dict[str, float]:
        out = {"alignment": self.alignment, "uniformity": self.uniformity,
               "effective_rank": self.effective_rank,
               "effective_rank/dim": self.effective_rank / self.dim if self.dim else float("nan")}
        for name, values in self.probes.items():
            for key, value in values.items():
                out[f"probe/{name}/{key}"] = value
        return out


def diagnose(test: FeatureSet, train: FeatureSet | None = None, *,
             root: str | os.PathLike | None = None,
             pairs: tuple[ArrayLike, ArrayLike] | None = None,
             config: DiagnosticsConfig | None = None) -> DiagnosticsResult:
    """Geometry of ``test``'s features, plus factor probes when ``train`` and a synthetic
    ``root`` (with ``metadata.jsonl``) are given and ``config.factors`` is on.

    Positive pairs: ``pairs`` if given, else adjacent clips of ``test.clip_features``
    ``(N, K, D)``; with neither (or ``K = 1``) alignment is NaN. Uniformity uses one clip per
    video, averaged over the ``K`` clip positions (video features when there are no clips).
    """
    cfg = config or DiagnosticsConfig()
    clips = test.clip_features
    if pairs is not None:
        align = alignment(*pairs)
    elif clips is not None and clips.shape[1] >= 2:
        align = alignment(clips[:, :-1].reshape(-1, clips.shape[-1]),
                          clips[:, 1:].reshape(-1, clips.shape[-1]))
    else:
        align = float("nan")
    if clips is not None:
        unif = float(np.mean([uniformity(clips[:, k], max_points=cfg.max_points, seed=cfg.seed)
                              for k in range(clips.shape[1])]))
    else:
        unif = uniformity(test.features, max_points=cfg.max_points, seed=cfg.seed)
    erank = effective_rank(l2_normalize(test.features))
    probes: dict[str, dict[str, float]] = {}
    hits: dict[str, np.ndarray] = {}
    if cfg.factors and train is not None and root is not None:
        probes = factor_probes(train, test, root, cfg, hits=hits)
    return DiagnosticsResult(align, unif, erank, int(test.features.shape[1]), probes, hits)
