"""``evaluate(encoder, dataset=..., root=...)``: every protocol on every split, one results object.

Frozen features are extracted **once** for the union of all videos of the requested splits
(UCF101's three splits share the same 13,320 videos; extraction is deterministic), then each
split's train / test rows are selected by path; with ``bn.mode=recompute`` once per split (each
split's encoder copy has its statistics re-estimated on that split's train clips). Every frozen
protocol reads them from one :class:`~vidssl.eval.cache.FeatureCache`. Finetuning runs once per
split on a copy of the encoder. Metrics that are means over test videos keep their per-video
outcomes (``info["per_video"]``), from which the results compute bootstrap intervals.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Sequence

import numpy as np
from torch import nn

from vidssl.data.index import DATASETS, build_index
from vidssl.data.index.core import VideoIndex
from vidssl.errors import ConfigError, VidsslError
from vidssl.eval.config import EvalConfig
from vidssl.eval.protocols import PROTOCOLS, EvalContext, EvalSplit, resolve_protocols
from vidssl.eval.report import EvalResults
from vidssl.provenance import records_hash
from vidssl.runtime.device import resolve_device

log = logging.getLogger("vidssl.eval")

MAX_SKIPPED_LISTED = 20


def eval_datasets() -> list[str]:
    """Registered datasets evaluation can use (official train/test splits)."""
    return DATASETS.names(eval=True)


def resolve_splits(dataset: str, splits: Sequence[int] | int | None) -> list[int]:
    """``None`` -> (1, 2, 3); values must be positive (up to the dataset's ``max_split``), no repeats."""
    if splits is None:
        return [1, 2, 3]
    values = [splits] if isinstance(splits, int) else list(splits)
    if not values:
        raise ConfigError("no split given")
    top = DATASETS.info(dataset)["max_split"]
    out = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ConfigError(f"split must be a positive integer, got {s!r}")
        if top is not None and s > top:
            raise ConfigError(f"{dataset} has splits {', '.join(map(str, range(1, top)))} and {top}, got {s}")
        if int(s) not in out:
            out.append(int(s))
    return out


def _notes(protocols: list[str], cfg: EvalConfig, ctx: EvalContext) -> list[str]:
    from vidssl.eval.cache import default_views

    notes = []
    if any(PROTOCOLS.info(p)["features"] for p in protocols):
        notes.append("frozen features: " + default_views(ctx.encoder, cfg.features).describe() + ", averaged")
    if ctx.cache is not None and ctx.cache.extractions:
        notes.append(bn_note(cfg, ctx.cache))
    for p in protocols:
        note = PROTOCOLS.info(p).get("note")
        if note is not None:
            notes.append(note(cfg))
    if any(ctx.info.get("per_video", {}).values()):
        c = cfg.intervals
        notes.append(f"[low, high]: {100 * c.level:g}% percentile bootstrap over test videos "
                     f"({c.resamples} resamples, seed {c.seed})")
    return notes


def bn_note(cfg: EvalConfig, cache: Any) -> str:
    """One line saying which BatchNorm statistics the frozen features were computed with."""
    if cache.bn_layers == 0:
        return f"BatchNorm: bn.mode={cfg.bn.mode} has no effect (the encoder has no BatchNorm layer)"
    if cache.recompute:
        return (f"BatchNorm: recompute (precise BN: statistics re-estimated per split on its train clips, "
                f"{cfg.bn.num_batches} batches of {cfg.bn.batch_size} clips at most, pooled variance)")
    return "BatchNorm: keep (the encoder's own running statistics)"


def _relative(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def split_hash(pair, root) -> str:
    """:func:`~vidssl.provenance.records_hash` of a split's train and test records (paths relative
    to the dataset root): the videos this evaluation actually used, comparable across machines."""
    return records_hash([(f"{sub}:{os.path.relpath(p, root)}", int(label))
                         for sub, ix in zip(("train", "test"), pair) for p, label in zip(ix.paths, ix.labels)])


def evaluate(
    encoder: nn.Module,
    *,
    dataset: str,
    root: str | os.PathLike,
    splits: Sequence[int] | int | None = None,
    protocols: str | Sequence[str] = "all",
    config: EvalConfig | None = None,
    device: str | None = None,
    progress: bool = True,
    encoder_name: str | None = None,
    index_kwargs: dict[str, Any] | None = None,
    zeroshot: Any = None,
) -> EvalResults:
    """Evaluate ``encoder`` on the train/test subsets of each split of ``dataset``.

    Args:
        encoder: a vidssl encoder (``num_features``, ``preprocess``, ``forward_features``).
        dataset: a registered dataset with official splits (``synthetic``, ``ucf101``,
            ``hmdb51``: :func:`eval_datasets`), read with ``build_index``.
        root: the dataset folder.
        splits: default (1, 2, 3).
        protocols: ``"all"`` (linear knn retrieval finetune diagnostics) or names of
            :data:`~vidssl.eval.protocols.PROTOCOLS` (with the presets such as ``linear:tclr``,
            ``attentive``, ``classify``, ``zeroshot``).
        config: :class:`~vidssl.eval.config.EvalConfig` (defaults documented there).
        device: overrides ``config.device`` (``"auto"``: CUDA when present).
        index_kwargs: extra ``build_index`` arguments (``annotations=``, ``cache=``, ...).
        zeroshot: a :class:`~vidssl.eval.zeroshot.ZeroShotSpec` (head into CLIP space and text
            tower) for the ``zeroshot`` protocol; default: the encoder's own (CLIP-temporal).

    Returns:
        :class:`~vidssl.eval.report.EvalResults` with per-split and mean numbers, per-video
        outcomes and their bootstrap intervals.
    """
    from vidssl.eval.cache import FeatureCache

    cfg = (config or EvalConfig()).validate()
    key = DATASETS.key(str(dataset).strip().lower())
    names = resolve_protocols(protocols)
    test_only = all(PROTOCOLS.info(n).get("test_only") for n in names)
    if not DATASETS.info(key)["eval"] and not test_only:
        raise ConfigError(f"evaluation needs a dataset with official train/test splits, one of "
                          f"{eval_datasets()}; got {dataset!r} (a dataset without splits takes only "
                          f"{', '.join(PROTOCOLS.names(sort=False, test_only=True))})")
    dev = resolve_device(device or cfg.device)
    t_start = time.perf_counter()
    kw = {"progress": False, **(index_kwargs or {})}
    if DATASETS.info(key)["eval"]:
        split_ids = resolve_splits(key, splits)
        indexes = {s: tuple(build_index(key, root, split=s, subset=sub, **kw) for sub in ("train", "test"))
                   for s in split_ids}
    else:   # test-only protocols (classify) on every video the dataset's arguments select
        if splits not in (None, 1, [1], (1,)):
            raise ConfigError(f"{key} has no official splits; it is evaluated as one test set (split 1)")
        split_ids = [1]
        test = build_index(key, root, **kw)
        train = VideoIndex([], [], [], [], class_names=test.class_names, name=f"{test.name}/no-train")
        indexes = {1: (train, test)}
    info: dict[str, Any] = {"config": dataclasses.asdict(cfg), "device": str(dev), "root": os.fspath(root),
                            "timings_s": {}, "videos": {}, "skipped": [], "per_video": {},
                            "split_hash": {str(s): split_hash(pair, root) for s, pair in indexes.items()}}
    ctx = EvalContext(encoder, key, indexes, cfg, dev, progress, zeroshot=zeroshot, info=info,
                      root=os.fspath(root) if DATASETS.info(key).get("factors") else None)
    ctx.cache = cache = FeatureCache(encoder, indexes, cfg, dev, progress, key)
    shared = any(PROTOCOLS.info(n)["features"] for n in names)
    tokens = tuple(cfg.attentive.token_grid) if any(PROTOCOLS.info(n).get("tokens") for n in names) else None
    clip_features = "diagnostics" in names

    def shared_features(s: int):
        return cache.features(s, token_grid=tokens, clip_features=clip_features)

    if shared and not cache.recompute:
        ctx.features = shared_features(split_ids[0])   # every split's videos (one extraction)
    for name in names:
        setup = PROTOCOLS.info(name).get("setup")
        if setup is not None:
            ctx.shared[name] = setup(ctx)
    per_split: dict[int, dict[str, dict[str, float]]] = {}
    for s, (train_ix, test_ix) in indexes.items():
        per_split[s] = {}
        info["per_video"][str(s)] = {}
        split = EvalSplit(ctx, s, train_ix, test_ix, counts={"train": len(train_ix), "test": len(test_ix)})
        if shared:
            fs = shared_features(s)
            split.train_features, split.test_features = fs.select(train_ix), fs.select(test_ix)
            split.counts.update(train_used=len(split.train_features), test_used=len(split.test_features))
        for name in names:
            t0 = time.perf_counter()
            split.videos = None
            raw = PROTOCOLS[name](split)
            metrics: dict[str, float] = {}
            outcomes: dict[str, list[float]] = {}
            for m, v in raw.items():
                if isinstance(v, np.ndarray):
                    metrics[m] = float(v.mean()) if len(v) else float("nan")
                    outcomes[m] = [float(x) for x in v]
                else:
                    metrics[m] = float(v)
            per_split[s][name] = metrics
            if outcomes:
                videos = split.videos if split.videos is not None else (
                    split.test_features.paths if split.test_features is not None else [])
                lengths = {len(o) for o in outcomes.values()}
                if lengths != {len(videos)}:
                    raise VidsslError(f"protocol {name} returned per-video outcomes for {sorted(lengths)} "
                                      f"videos but names {len(videos)}")
                info["per_video"][str(s)][name] = {
                    "videos": [_relative(v, os.fspath(root)) for v in videos], "outcomes": outcomes}
            dt = time.perf_counter() - t0
            info["timings_s"][f"split{s}/{name}"] = dt
            log.info("split %d %s (%.1f s): %s", s, name, dt,
                     ", ".join(f"{m}={v:.4g}" for m, v in metrics.items()))
        info["videos"][str(s)] = split.counts
    info["timings_s"].update(cache.timings)
    skipped = cache.skipped()
    if cache.extractions:
        info["skipped"] = [list(p) for p in skipped[:MAX_SKIPPED_LISTED]]
        info["skipped_count"] = len(skipped)
        info["bn"] = {"mode": cfg.bn.mode, "batchnorm_layers": cache.bn_layers,
                      "recomputed": cache.recompute, "batches": cache.bn_batches}
    info["timings_s"]["total"] = time.perf_counter() - t_start
    info["notes"] = _notes(names, cfg, ctx)
    if info.get("skipped_count"):
        info["notes"].append(f"{info['skipped_count']} unreadable videos skipped (listed in info.skipped)")
    name = encoder_name or getattr(encoder, "encoder_name", None) or type(encoder).__name__
    return EvalResults(key, str(name), split_ids, names, per_split, info)
