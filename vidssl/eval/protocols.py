"""The evaluation protocols by name, and how each one runs on extracted features.

``linear``, ``knn``, ``retrieval`` and ``diagnostics`` share one feature extraction (frozen
encoder); ``finetune`` trains a copy of the encoder per split; ``zeroshot`` classifies test
videos with a CLIP text classifier (:mod:`vidssl.eval.zeroshot`). Each runner returns a flat
``{metric: value}`` dict for :class:`~vidssl.eval.report.EvalResults`.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from vidssl.eval.config import EvalConfig
from vidssl.eval.diagnostics import diagnose
from vidssl.eval.features import FeatureSet
from vidssl.eval.knn import knn_classify
from vidssl.eval.linear import linear_probe
from vidssl.eval.retrieval import retrieval_hits
from vidssl.errors import ConfigError

PROTOCOLS: tuple[str, ...] = ("linear", "knn", "retrieval", "finetune", "diagnostics", "zeroshot")
#: What ``"all"`` means: every protocol but ``zeroshot``, which needs a concept space (a
#: CLIP-temporal encoder or an LSS checkpoint) and is asked for by name.
ALL_PROTOCOLS: tuple[str, ...] = ("linear", "knn", "retrieval", "finetune", "diagnostics")
FEATURE_PROTOCOLS: frozenset[str] = frozenset({"linear", "knn", "retrieval", "diagnostics"})


def resolve_protocols(protocols: str | Sequence[str]) -> list[str]:
    """``"all"``, a name, a comma-separated string or a list -> names in canonical order."""
    if isinstance(protocols, str):
        protocols = [protocols]
    names = [p.strip().lower() for item in protocols for p in str(item).split(",") if p.strip()]
    if not names:
        raise ConfigError(f"no protocol given; choose from {list(PROTOCOLS)} or 'all'")
    unknown = [p for p in names if p not in PROTOCOLS and p != "all"]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)} or 'all'")
    if "all" in names:
        names = list(ALL_PROTOCOLS) + [p for p in names if p == "zeroshot"]
    return [p for p in PROTOCOLS if p in names]


def run_feature_protocol(name: str, train: FeatureSet, test: FeatureSet, config: EvalConfig, *,
                         root: str | os.PathLike | None = None,
                         device: torch.device | str | None = None) -> dict[str, float]:
    """Run one frozen-feature protocol (train features -> test features); the linear probe's
    fits run on ``device`` (default CPU), the rest on the CPU."""
    num_classes = max(train.num_classes, test.num_classes)
    if name == "linear":
        c = config.linear
        return linear_probe(train.features, train.labels, test.features, test.labels,
                            train_groups=train.groups, num_classes=num_classes,
                            weight_decays=c.weight_decays, val_fraction=c.val_fraction,
                            seed=c.seed, max_iter=c.max_iter, device=device).metrics()
    if name == "knn":
        return knn_classify(train.features, train.labels, test.features, test.labels,
                            k=config.knn.k, temperature=config.knn.temperature,
                            num_classes=num_classes).metrics()
    if name == "retrieval":
        return retrieval_hits(train.features, train.labels, test.features, test.labels,
                              ks=config.retrieval.ks, center=config.retrieval.center).metrics()
    if name == "diagnostics":
        return diagnose(test, train, root=root, config=config.diagnostics).metrics()
    raise ConfigError(f"{name!r} is not a frozen-feature protocol; choose from {sorted(FEATURE_PROTOCOLS)}")
