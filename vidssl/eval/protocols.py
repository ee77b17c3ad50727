"""The evaluation protocols, registered by name with their runners.

A protocol is a runner ``fn(split: EvalSplit) -> {metric: value}`` registered in
:data:`PROTOCOLS` with what :func:`vidssl.eval.run.evaluate` needs to know about it:
``features`` (it reads the shared frozen features, ``split.train_features`` /
``split.test_features``), ``tokens`` (those features must carry the attentive probe's tokens),
``in_all`` (part of ``"all"``), an optional ``setup(ctx) -> object`` run once per evaluation
(its result is ``ctx.shared[name]``) and ``note(config) -> str`` for the results' notes.

A metric that is a mean over test videos (top-1, hit@k, a probe's accuracy) is returned as the
per-video ``np.ndarray`` of outcomes (0/1); ``evaluate`` reports its mean and a bootstrap
interval (:mod:`vidssl.eval.intervals`). The outcomes belong to ``split.test_features.paths``
unless the runner names its own scored videos with ``split.videos = [...]``. Other values
(hyper-parameters, losses, geometry) are plain floats. Protocols with their own views (the
presets) ask ``split.context.cache`` (:class:`~vidssl.eval.cache.FeatureCache`) for them.

``linear``, ``knn``, ``retrieval`` and ``diagnostics`` share one feature extraction (frozen
encoder); ``finetune`` trains a copy of the encoder per split; ``zeroshot`` classifies test
videos with a CLIP text classifier (:mod:`vidssl.eval.zeroshot`; asked for by name, not part of
``all``). A new protocol is its runner (here, or in its own module registered here by its
``lazy`` path) plus one :func:`register_protocol` call, and its settings section in
:class:`~vidssl.eval.config.EvalConfig` when it has settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from vidssl.data.index.core import VideoIndex
from vidssl.errors import ConfigError
from vidssl.eval.config import EvalConfig
from vidssl.eval.diagnostics import diagnose
from vidssl.eval.features import FeatureSet
from vidssl.eval.knn import knn_classify
from vidssl.eval.linear import linear_probe
from vidssl.eval.retrieval import retrieval_hits
from vidssl.registry import Registry

__all__ = ["PROTOCOLS", "EvalContext", "EvalSplit", "register_protocol", "resolve_protocols"]


@dataclass
class EvalContext:
    """One evaluation: what every protocol's setup and runner may read.

    ``indexes``: split -> ``(train, test)``; ``features``: frozen features of every video of
    every split (``None`` when no protocol reads them); ``info``: the results' info (timings,
    per-protocol details); ``root``: the dataset root when it has per-video factor metadata
    (the synthetic dataset), else ``None``."""

    encoder: nn.Module
    dataset: str
    indexes: dict[int, tuple[VideoIndex, VideoIndex]]
    config: EvalConfig
    device: torch.device
    progress: bool = True
    root: Optional[str] = None
    features: Optional[FeatureSet] = None
    zeroshot: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    cache: Any = None                    # FeatureCache: frozen features by views / BN / tokens


@dataclass
class EvalSplit:
    """One split as a runner sees it; ``counts`` collects video counts it wants reported."""

    context: EvalContext
    split: int
    train: VideoIndex
    test: VideoIndex
    train_features: Optional[FeatureSet] = None
    test_features: Optional[FeatureSet] = None
    counts: dict[str, int] = field(default_factory=dict)
    videos: Optional[list[str]] = None   # the test videos a runner's per-video outcomes belong to

    @property
    def config(self) -> EvalConfig:
        return self.context.config

    @property
    def num_classes(self) -> int:
        return max(self.train_features.num_classes, self.test_features.num_classes)


#: Protocols by name, in their canonical order (results list them so).
PROTOCOLS: Registry[Callable[[EvalSplit], dict]] = Registry("protocol", aliases={"linear:fast": "linear"})


def register_protocol(name: str, runner: Callable[[EvalSplit], dict] | None = None, *, lazy: str | None = None,
                      features: bool = False, in_all: bool = True, setup: Callable[[EvalContext], Any] | None = None,
                      note: Callable[[EvalConfig], str] | None = None, tokens: bool = False,
                      summary: str = "", test_only: bool = False) -> Any:
    """Register ``runner`` (or ``lazy``, its ``"module:function"`` path, imported on first use; or,
    without either, the decorated function) as protocol ``name``; ``summary`` is its line in
    ``vidssl eval --help``; ``test_only``: it never reads the train videos (so it also runs on a
    dataset without official splits, e.g. Kinetics' validation CSV)."""
    return PROTOCOLS.register(name, runner, lazy=lazy, features=features or tokens, in_all=in_all,
                              setup=setup, note=note, tokens=tokens, summary=summary, test_only=test_only)


def resolve_protocols(protocols: str | Sequence[str]) -> list[str]:
    """``"all"``, a name, a comma-separated string or a list -> names in canonical order."""
    if isinstance(protocols, str):
        protocols = [protocols]
    names = [p.strip().lower() for item in protocols for p in str(item).split(",") if p.strip()]
    known = PROTOCOLS.names(sort=False)
    if not names:
        raise ConfigError(f"no protocol given; choose from {known} or 'all'")
    unknown = [p for p in names if p not in PROTOCOLS and p != "all"]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; choose from {known} or 'all'")
    names = [p if p == "all" else PROTOCOLS.key(p) for p in names]
    if "all" in names:
        names += PROTOCOLS.names(sort=False, in_all=True)
    return [p for p in known if p in names]


# ------------------------------------------------------------------ frozen-feature protocols

@register_protocol("linear", features=True, summary="L-BFGS logistic regression on cached clip-averaged "
                   "features (fast default; alias linear:fast)", note=lambda c: (
    "linear (linear:fast): L-BFGS logistic regression on L2-normalised features; weight decay chosen "
    "on a group-aware validation part of train, refit on train"))
def run_linear(s: EvalSplit) -> dict[str, float]:
    c, tr, te = s.config.linear, s.train_features, s.test_features
    return linear_probe(tr.features, tr.labels, te.features, te.labels, train_groups=tr.groups,
                        num_classes=s.num_classes, weight_decays=c.weight_decays,
                        val_fraction=c.val_fraction, seed=c.seed, max_iter=c.max_iter,
                        device=s.context.device).outcomes()


@register_protocol("knn", features=True, summary="weighted kNN (k=20, t=0.07) on cached features",
                   note=lambda c: f"knn: cosine, k={c.knn.k}, votes weighted by exp(s/{c.knn.temperature})")
def run_knn(s: EvalSplit) -> dict[str, float]:
    tr, te = s.train_features, s.test_features
    return knn_classify(tr.features, tr.labels, te.features, te.labels, k=s.config.knn.k,
                        temperature=s.config.knn.temperature, num_classes=s.num_classes).outcomes()


@register_protocol("retrieval", features=True, summary="test queries the train gallery, hit@k (cached features)",
                   note=lambda c: (
    "retrieval: test queries the train gallery, cosine; features "
    + ("mean-centred (train mean)" if c.retrieval.center else "not mean-centred")))
def run_retrieval(s: EvalSplit) -> dict[str, float]:
    tr, te, c = s.train_features, s.test_features, s.config.retrieval
    return retrieval_hits(tr.features, tr.labels, te.features, te.labels, ks=c.ks, center=c.center).outcomes()


# ------------------------------------------------------------------ finetuning

@register_protocol("finetune", summary="the whole network with a new head (vidssl's small-scale recipe)",
                   note=lambda c: (
    f"finetune: {c.finetune.epochs} epoch(s), AdamW lr {c.finetune.lr:g} wd {c.finetune.weight_decay:g}, "
    f"cosine; test {c.finetune.test_clips} clips x {c.finetune.test_crops} crops"))
def run_finetune(s: EvalSplit) -> dict[str, float]:
    from vidssl.eval.finetune import finetune

    ctx = s.context
    res = finetune(ctx.encoder, s.train, s.test, config=s.config.finetune, device=ctx.device,
                   progress=ctx.progress)
    s.counts["finetune_test_skipped"] = len(res.skipped_test)
    s.videos = res.videos
    return res.outcomes()


# ------------------------------------------------------------------ attentive probe (cached tokens)

register_protocol("attentive", lazy="vidssl.eval.attentive:run_attentive", tokens=True, in_all=False,
                  summary="attentive probe (learned queries cross-attend to cached spatio-temporal tokens; "
                          "lr x wd grid in one pass)",
                  note=lambda c: (
    f"attentive: {c.attentive.depth} block(s) ({c.attentive.depth - 1} self-attention over the tokens + "
    f"cross-attention from {c.attentive.num_queries} quer(y/ies)), grid lr {list(c.attentive.lrs)} x wd "
    f"{list(c.attentive.weight_decays)} trained in one pass on cached tokens (<= {list(c.attentive.token_grid)} "
    f"cells per clip, fp16), chosen on a validation part of train"
    + (", refit on train" if c.attentive.refit else "")
    + f"; {c.attentive.epochs} epochs"))


# ------------------------------------------------------------------ diagnostics (after finetune: canonical order)

@register_protocol("diagnostics", features=True, summary="alignment, uniformity, effective rank, per-factor probes",
                   note=lambda c: (
    "diagnostics on test features: alignment over adjacent clips, uniformity t=2, effective rank "
    "of the covariance; probe/* = linear probes per factor"))
def run_diagnostics(s: EvalSplit) -> dict[str, float]:
    return diagnose(s.test_features, s.train_features, root=s.context.root,
                    config=s.config.diagnostics).outcomes()


def counterfactual_setup(ctx: EvalContext) -> Any:
    from vidssl.eval.counterfactual import counterfactual_setup as setup

    return setup(ctx)


register_protocol("counterfactual", lazy="vidssl.eval.counterfactual:run_counterfactual", in_all=False,
                  setup=counterfactual_setup,
                  summary="synthetic only: is an action nearer to itself in another look than to another "
                          "action in the same look (rendered triplets)",
                  note=lambda c: (
    f"counterfactual: {c.diagnostics.counterfactual_triplets} rendered triplets (seed {c.diagnostics.seed}); "
    "motion_preference = share of anchors nearer (cosine) to the same action in another look than to "
    "another action in the same look"))


# ------------------------------------------------------------------ zero-shot

def zeroshot_setup(ctx: EvalContext) -> dict[str, Any]:
    """Text classifier weights and test-video embeddings in CLIP space, once per evaluation."""
    from vidssl.eval.features import extract_features, union_index
    from vidssl.eval.zeroshot import ZeroShotEncoder, class_weights, zeroshot_spec_from_encoder

    spec = ctx.zeroshot or zeroshot_spec_from_encoder(ctx.encoder)
    t0 = time.perf_counter()
    class_names = list(next(iter(ctx.indexes.values()))[1].class_names)
    z = ctx.config.zeroshot
    weights = class_weights(class_names, spec, templates=list(z.templates), attributes=z.attributes,
                            vocabulary=ctx.dataset, device=ctx.device)
    if isinstance(spec.head, nn.Identity) and ctx.features is not None:
        feats = ctx.features                   # the encoder already embeds in CLIP space
    else:
        fc = ctx.config.features
        tests = union_index([pair[1] for pair in ctx.indexes.values()], f"{ctx.dataset}/test")
        model = ZeroShotEncoder(ctx.encoder, spec.head, int(weights.shape[0]))
        feats = extract_features(
            model, tests, num_clips=fc.num_clips, num_crops=fc.num_crops, clip_len=fc.clip_len,
            stride=fc.stride, size=fc.size, resize_size=fc.resize_size, batch_size=fc.batch_size,
            num_workers=fc.num_workers, device=ctx.device, decoder=fc.decoder, progress=ctx.progress,
            amp=fc.amp)
    ctx.info["timings_s"]["zeroshot_setup"] = time.perf_counter() - t0
    ctx.info["zeroshot"] = {"text_tower": f"{spec.clip_model}/{spec.clip_pretrained or 'random-init'}",
                            "source": spec.source, "classes": len(class_names)}
    return {"features": feats, "weights": weights}


def _zeroshot_note(c: EvalConfig) -> str:
    z = c.zeroshot
    return (f"zeroshot: CLIP text classifier, {len(z.templates) or 'vidssl video'} template(s)"
            + (f" + attributes ({z.attributes})" if z.attributes else "")
            + f", multi-clip video embedding, logits x{z.logit_scale:g}; test lists only")


@register_protocol("zeroshot", in_all=False, setup=zeroshot_setup, note=_zeroshot_note,
                   summary="CLIP text classifier (CLIP-temporal encoders, LSS checkpoints)")
def run_zeroshot(s: EvalSplit) -> dict[str, float]:
    from vidssl.eval.linear import topk_hits
    from vidssl.eval.zeroshot import zeroshot_classify, zeroshot_logits

    zs = s.context.shared["zeroshot"]
    test = zs["features"].select(s.test)
    s.counts["zeroshot_test_used"] = len(test)
    zeroshot_classify(test.features, test.labels, zs["weights"], s.config.zeroshot.logit_scale)  # checks shapes
    hits = topk_hits(zeroshot_logits(test.features, zs["weights"], s.config.zeroshot.logit_scale), test.labels)
    s.videos = list(test.paths)
    return {"top1": hits[1], "top5": hits[5]}


# ------------------------------------------------------------------ presets: the papers' own protocols

from vidssl.eval.presets import register_presets  # noqa: E402 - needs register_protocol above

register_presets(register_protocol)
