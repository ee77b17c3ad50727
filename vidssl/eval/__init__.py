"""Evaluation suite: frozen features, linear probe, kNN, retrieval, attentive probe, finetuning,
diagnostics, the papers' protocols as presets, intervals and precise BN.

>>> from vidssl.eval import evaluate
>>> results = evaluate(encoder, dataset="synthetic", root="data/synthetic", splits=[1],
...                    protocols=["linear", "knn"])                         # doctest: +SKIP
>>> print(results.to_markdown())                                           # doctest: +SKIP

See ``docs/evaluation.md`` for each protocol, its defaults and how to read the diagnostics.
"""

from vidssl.eval.config import (
    DiagnosticsConfig,
    EvalConfig,
    FeatureConfig,
    FinetuneConfig,
    KNNConfig,
    LinearConfig,
    RetrievalConfig,
)
from vidssl.eval.diagnostics import (
    DiagnosticsResult,
    alignment,
    appearance_factors,
    diagnose,
    effective_rank,
    factor_probes,
    uniformity,
)
from vidssl.eval.features import FeatureSet, encode_clips, extract_features, spatial_crops
from vidssl.eval.finetune import FinetuneModel, FinetuneResult, finetune
from vidssl.eval.knn import KNNResult, knn_classify, knn_scores
from vidssl.eval.linear import (
    LinearProbeResult,
    fit_logistic,
    linear_probe,
    ridge_probe,
    select_weight_decay,
    topk_accuracy,
    validation_split,
)
from vidssl.eval.attentive import AttentiveProbe, attentive_probe
from vidssl.eval.batchnorm import recompute_batchnorm
from vidssl.eval.cache import FeatureCache
from vidssl.eval.intervals import bootstrap_interval
from vidssl.eval.presets import PRESETS, preset_settings
from vidssl.eval.protocols import PROTOCOLS, resolve_protocols
from vidssl.eval.report import EvalResults
from vidssl.eval.retrieval import RetrievalResult, retrieval_hits
from vidssl.eval.run import evaluate

__all__ = [
    "PRESETS",
    "PROTOCOLS",
    "AttentiveProbe",
    "FeatureCache",
    "attentive_probe",
    "bootstrap_interval",
    "preset_settings",
    "recompute_batchnorm",
    "DiagnosticsConfig",
    "DiagnosticsResult",
    "EvalConfig",
    "EvalResults",
    "FeatureConfig",
    "FeatureSet",
    "FinetuneConfig",
    "FinetuneModel",
    "FinetuneResult",
    "KNNConfig",
    "KNNResult",
    "LinearConfig",
    "LinearProbeResult",
    "RetrievalConfig",
    "RetrievalResult",
    "alignment",
    "appearance_factors",
    "diagnose",
    "effective_rank",
    "encode_clips",
    "evaluate",
    "extract_features",
    "factor_probes",
    "finetune",
    "fit_logistic",
    "knn_classify",
    "knn_scores",
    "linear_probe",
    "resolve_protocols",
    "retrieval_hits",
    "ridge_probe",
    "select_weight_decay",
    "spatial_crops",
    "topk_accuracy",
    "uniformity",
    "validation_split",
]
