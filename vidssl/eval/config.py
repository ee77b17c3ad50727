"""Settings of the evaluation suite (``vidssl eval --config X.yaml key=value ...``).

Dataclasses merged by :func:`vidssl.config.load_config`: unknown keys and wrong types are
one-line :class:`~vidssl.errors.ConfigError`\\ s. ``None`` for a clip/crop setting means "take it
from ``encoder.preprocess``" (the weights carry their own input spec). Where each default comes
from is in ``docs/evaluation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vidssl.errors import ConfigError

#: L2 strengths searched by the linear probe (and the factor probes): 10^-8 .. 10^0.
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = tuple(10.0 ** e for e in range(-8, 1))
#: Ridge strengths searched by the continuous factor probes.
DEFAULT_RIDGE_LAMBDAS: tuple[float, ...] = tuple(10.0 ** e for e in range(-4, 3))


@dataclass
class FeatureConfig:
    """Frozen-feature extraction shared by linear / kNN / retrieval / diagnostics."""

    num_clips: int = 10                 # K evenly spaced clips per video
    num_crops: int = 1                  # 1 = centre, 3 = along the long side, 5 = corners + centre, 10 = 5 + flips
    clip_len: Optional[int] = None      # frames per clip (None: encoder.preprocess.num_frames)
    stride: Optional[int] = None        # frame step (None: encoder.preprocess.stride)
    size: Optional[int] = None          # crop side (None: encoder.preprocess.crop_size)
    resize_size: Optional[int] = None   # short side before cropping (None: preprocess)
    batch_size: int = 64                # clips per encoder forward
    num_workers: int = 2                # DataLoader workers decoding videos
    decoder: str = "torchcodec"
    amp: bool = True                    # bf16 autocast on CUDA (ignored on CPU)
    cache_dir: Optional[str] = None     # also keep extracted features here, reused by later runs


@dataclass
class LinearConfig:
    weight_decays: list[float] = field(default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS))
    val_fraction: float = 0.2           # part of *train* held out to choose weight decay
    max_iter: int = 1000                # L-BFGS iterations per fit
    seed: int = 0


@dataclass
class KNNConfig:
    k: int = 20
    temperature: float = 0.07


@dataclass
class RetrievalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])
    center: bool = False                # subtract the gallery (train) mean before cosine


@dataclass
class FinetuneConfig:
    epochs: int = 10
    batch_size: int = 16
    lr: float = 3e-4                    # AdamW peak learning rate (encoder and head)
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0          # linear warm-up, then cosine to 0 (per iteration)
    clip_grad: Optional[float] = None   # max global grad norm (None = off), as optim.clip_grad
    dropout: float = 0.5
    label_smoothing: float = 0.0
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])  # RandomResizedCrop area
    flip: float = 0.5                   # horizontal flip probability
    clip_len: Optional[int] = None
    stride: Optional[int] = None
    size: Optional[int] = None
    resize_size: Optional[int] = None
    test_clips: int = 10
    test_crops: int = 3
    test_batch_size: int = 64           # clips per forward at test time
    num_workers: int = 2
    decoder: str = "torchcodec"
    amp: bool = True
    seed: int = 0


@dataclass
class DiagnosticsConfig:
    factors: bool = True                # per-factor probes when metadata.jsonl is available
    max_points: int = 4096              # uniformity: videos subsampled above this (O(N^2))
    weight_decays: list[float] = field(default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS))
    ridge_lambdas: list[float] = field(default_factory=lambda: list(DEFAULT_RIDGE_LAMBDAS))
    val_fraction: float = 0.2
    max_iter: int = 300
    seed: int = 0
    counterfactual_triplets: int = 100  # protocol `counterfactual` (synthetic data only)


@dataclass
class BNConfig:
    """BatchNorm statistics of the frozen encoder (``linear knn retrieval diagnostics attentive``
    and the retrieval presets): ``keep`` its own, or ``recompute`` them on the split's train clips
    (precise BN, :mod:`vidssl.eval.batchnorm`)."""

    mode: str = "keep"                  # keep | recompute
    num_batches: int = 200              # precise BN: at most this many batches (PySlowFast's default)
    batch_size: int = 32                # clips per batch
    seed: int = 0                       # order of the train videos


@dataclass
class IntervalConfig:
    """Percentile-bootstrap intervals over test videos (:mod:`vidssl.eval.intervals`)."""

    level: float = 0.95
    resamples: int = 1000
    seed: int = 0


@dataclass
class AttentiveConfig:
    """The attentive probe (:mod:`vidssl.eval.attentive`) on cached frozen tokens: ``depth`` - 1
    self-attention blocks over the tokens, then cross-attention from ``num_queries`` learned
    queries, then a linear classifier; a grid of ``lrs`` x ``weight_decays`` heads trained in
    one pass, the best chosen on a validation part of train, refitted on all of train."""

    depth: int = 1                      # 1..4 blocks (V-JEPA: 1; V-JEPA 2: 4)
    num_queries: int = 1
    num_heads: Optional[int] = None     # None: width // 64 (at least 1, dividing the width)
    mlp_ratio: float = 4.0
    lrs: list[float] = field(default_factory=lambda: [1e-3, 3e-4])
    weight_decays: list[float] = field(default_factory=lambda: [0.01, 0.1])
    epochs: int = 20
    batch_size: int = 32
    warmup_epochs: float = 0.0
    final_weight_decay: Optional[float] = None   # cosine weight-decay schedule to this (None: constant)
    clip_grad: Optional[float] = None
    token_grid: list[int] = field(default_factory=lambda: [4, 7, 7])   # max (t, h, w) cells per clip
    val_fraction: float = 0.2
    refit: bool = True                  # retrain the chosen head on all of train
    seed: int = 0


@dataclass
class ZeroShotConfig:
    """Zero-shot text classifier (``vidssl eval --protocol zeroshot``)."""

    templates: list[str] = field(default_factory=list)   # [] = vidssl's VIDEO_TEMPLATES; "{}" = class
    attributes: Optional[str] = None    # None | "curated" (shipped file of the dataset) | path
    logit_scale: float = 100.0          # CLIP's trained scale (ranks, hence top-k, do not depend on it)


@dataclass
class EvalConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    zeroshot: ZeroShotConfig = field(default_factory=ZeroShotConfig)
    bn: BNConfig = field(default_factory=BNConfig)
    intervals: IntervalConfig = field(default_factory=IntervalConfig)
    attentive: AttentiveConfig = field(default_factory=AttentiveConfig)
    # Per-preset settings over the preset's own (the authors'): {"linear:tclr": {"epochs": 2}}.
    # On the command line: presets.linear:tclr.epochs=2 (or linear:tclr.epochs=2).
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"                # auto | cpu | cuda | cuda:N

    def validate(self) -> "EvalConfig":
        """Range checks the type system cannot express (one-line ``ConfigError``)."""
        f, ft = self.features, self.finetune
        positive = {
            "features.num_clips": f.num_clips, "features.batch_size": f.batch_size,
            "linear.max_iter": self.linear.max_iter, "knn.k": self.knn.k,
            "finetune.epochs": ft.epochs, "finetune.batch_size": ft.batch_size,
            "finetune.test_clips": ft.test_clips, "finetune.test_batch_size": ft.test_batch_size,
            "diagnostics.max_points": self.diagnostics.max_points,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        for key, value in {"features.num_crops": f.num_crops, "finetune.test_crops": ft.test_crops}.items():
            if value not in (1, 3, 5, 10):
                raise ConfigError(f"{key} must be 1 (centre), 3 (along the long side), 5 (corners + "
                                  f"centre) or 10 (5 + flips), got {value}")
        for key, value in {"linear.val_fraction": self.linear.val_fraction,
                           "diagnostics.val_fraction": self.diagnostics.val_fraction}.items():
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{key} must be in (0, 1), got {value}")
        if self.knn.temperature <= 0:
            raise ConfigError(f"knn.temperature must be > 0, got {self.knn.temperature}")
        if not self.retrieval.ks or min(self.retrieval.ks) < 1:
            raise ConfigError(f"retrieval.ks must be positive integers, got {self.retrieval.ks}")
        if not self.linear.weight_decays or min(self.linear.weight_decays) < 0:
            raise ConfigError(f"linear.weight_decays must be non-negative, got {self.linear.weight_decays}")
        lo_hi = ft.crop_scale
        if len(lo_hi) != 2 or not 0.0 < lo_hi[0] <= lo_hi[1] <= 1.0:
            raise ConfigError(f"finetune.crop_scale must be [min, max] in (0, 1], got {lo_hi}")
        if not 0.0 <= ft.dropout < 1.0 or not 0.0 <= ft.flip <= 1.0:
            raise ConfigError("finetune.dropout must be in [0, 1) and finetune.flip in [0, 1]")
        if ft.lr <= 0 or ft.weight_decay < 0 or ft.warmup_epochs < 0:
            raise ConfigError("finetune.lr must be > 0, weight_decay and warmup_epochs >= 0")
        bad = [t for t in self.zeroshot.templates if t.count("{}") != 1 or not _formats(t)]
        if bad:
            raise ConfigError(f"zeroshot.templates must each hold one '{{}}' for the class name, got {bad[:2]}")
        if self.zeroshot.logit_scale <= 0:
            raise ConfigError(f"zeroshot.logit_scale must be > 0, got {self.zeroshot.logit_scale}")
        if self.bn.mode not in ("keep", "recompute"):
            raise ConfigError(f"bn.mode must be keep or recompute, got {self.bn.mode!r}")
        if self.bn.num_batches < 1 or self.bn.batch_size < 2:
            raise ConfigError("bn.num_batches must be >= 1 and bn.batch_size >= 2")
        if not 0.0 < self.intervals.level < 1.0 or self.intervals.resamples < 1:
            raise ConfigError(f"intervals.level must be in (0, 1) and intervals.resamples >= 1, got "
                              f"{self.intervals.level} / {self.intervals.resamples}")
        a = self.attentive
        if not 1 <= a.depth <= 4:
            raise ConfigError(f"attentive.depth must be 1 to 4 blocks, got {a.depth}")
        if a.num_queries < 1 or a.epochs < 1 or a.batch_size < 1:
            raise ConfigError("attentive.num_queries, attentive.epochs and attentive.batch_size must be >= 1")
        if not a.lrs or min(a.lrs) <= 0 or not a.weight_decays or min(a.weight_decays) < 0:
            raise ConfigError(f"attentive.lrs must be > 0 and attentive.weight_decays >= 0, got "
                              f"{a.lrs} / {a.weight_decays}")
        if len(a.token_grid) != 3 or min(a.token_grid) < 1:
            raise ConfigError(f"attentive.token_grid must be 3 positive integers (t, h, w), got {a.token_grid}")
        if not 0.0 < a.val_fraction < 1.0:
            raise ConfigError(f"attentive.val_fraction must be in (0, 1), got {a.val_fraction}")
        from vidssl.eval.presets import PRESETS, preset_settings

        for name, overrides in self.presets.items():
            if name not in PRESETS:
                raise ConfigError(f"presets.{name}: unknown preset; known: {', '.join(PRESETS)}")
            preset_settings(name, overrides)
        return self


def _formats(template: str) -> bool:
    """Whether ``template.format(name)`` works (no other ``{field}``; braces doubled)."""
    try:
        template.format("class")
    except (IndexError, KeyError, ValueError):
        return False
    return True
