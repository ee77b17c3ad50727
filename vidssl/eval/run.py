"""``evaluate(encoder, dataset=..., root=...)``: every protocol on every split, one results object.

Frozen features are extracted **once** for the union of all videos of the requested splits
(UCF101's three splits share the same 13,320 videos; extraction is deterministic), then each
split's train / test rows are selected by path. Finetuning runs once per split on a copy of
the encoder.
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
from vidssl.errors import ConfigError
from vidssl.eval.config import EvalConfig
from vidssl.eval.features import extract_features, resolve_clip_settings, union_index
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


def _notes(protocols: list[str], cfg: EvalConfig, settings: dict[str, Any]) -> list[str]:
    notes = []
    if any(PROTOCOLS.info(p)["features"] for p in protocols):
        crop = "centre crop" if settings["num_crops"] == 1 else "3 crops along the long side"
        notes.append(f"frozen features: {settings['num_clips']} evenly spaced clips of "
                     f"{settings['clip_len']} frames (stride {settings['stride']}) x {crop} of "
                     f"{settings['size']} px (short side {settings['resize_size']}), averaged")
    for p in protocols:
        note = PROTOCOLS.info(p).get("note")
        if note is not None:
            notes.append(note(cfg))
    return notes


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
        protocols: ``"all"`` (all but zeroshot) or names of :data:`~vidssl.eval.protocols.PROTOCOLS`
            (``linear knn retrieval finetune diagnostics zeroshot``).
        config: :class:`~vidssl.eval.config.EvalConfig` (defaults documented there).
        device: overrides ``config.device`` (``"auto"``: CUDA when present).
        index_kwargs: extra ``build_index`` arguments (``annotations=``, ``cache=``, ...).
        zeroshot: a :class:`~vidssl.eval.zeroshot.ZeroShotSpec` (head into CLIP space and text
            tower) for the ``zeroshot`` protocol; default: the encoder's own (CLIP-temporal).

    Returns:
        :class:`~vidssl.eval.report.EvalResults` with per-split and mean numbers.
    """
    cfg = (config or EvalConfig()).validate()
    key = DATASETS.key(str(dataset).strip().lower())
    if not DATASETS.info(key)["eval"]:
        raise ConfigError(f"evaluation needs a dataset with official train/test splits, one of "
                          f"{eval_datasets()}; got {dataset!r}")
    names = resolve_protocols(protocols)
    split_ids = resolve_splits(key, splits)
    dev = resolve_device(device or cfg.device)
    t_start = time.perf_counter()
    kw = {"progress": False, **(index_kwargs or {})}
    indexes = {s: tuple(build_index(key, root, split=s, subset=sub, **kw) for sub in ("train", "test"))
               for s in split_ids}
    info: dict[str, Any] = {"config": dataclasses.asdict(cfg), "device": str(dev), "root": os.fspath(root),
                            "timings_s": {}, "videos": {}, "skipped": [],
                            "split_hash": {str(s): split_hash(pair, root) for s, pair in indexes.items()}}
    ctx = EvalContext(encoder, key, indexes, cfg, dev, progress, zeroshot=zeroshot, info=info,
                      root=os.fspath(root) if DATASETS.info(key).get("factors") else None)
    fc = cfg.features
    settings = {"num_clips": fc.num_clips, "num_crops": fc.num_crops,
                **resolve_clip_settings(encoder, fc.clip_len, fc.stride, fc.size, fc.resize_size)}
    if any(PROTOCOLS.info(n)["features"] for n in names):
        all_videos = union_index([ix for pair in indexes.values() for ix in pair], f"{key}/all")
        t0 = time.perf_counter()
        ctx.features = feats = extract_features(
            encoder, all_videos, num_clips=fc.num_clips, num_crops=fc.num_crops,
            clip_len=fc.clip_len, stride=fc.stride, size=fc.size, resize_size=fc.resize_size,
            batch_size=fc.batch_size, num_workers=fc.num_workers, device=dev, decoder=fc.decoder,
            progress=progress, keep_clip_features="diagnostics" in names, amp=fc.amp)
        info["timings_s"]["features"] = time.perf_counter() - t0
        info["skipped"] = [list(p) for p in feats.skipped[:MAX_SKIPPED_LISTED]]
        info["skipped_count"] = len(feats.skipped)
        log.info("features: %d videos x %d dims in %.1f s (%d skipped)", len(feats),
                 feats.features.shape[1], info["timings_s"]["features"], len(feats.skipped))
    for name in names:
        setup = PROTOCOLS.info(name).get("setup")
        if setup is not None:
            ctx.shared[name] = setup(ctx)
    per_split: dict[int, dict[str, dict[str, float]]] = {}
    for s, (train_ix, test_ix) in indexes.items():
        per_split[s] = {}
        split = EvalSplit(ctx, s, train_ix, test_ix, counts={"train": len(train_ix), "test": len(test_ix)})
        if ctx.features is not None:
            split.train_features, split.test_features = ctx.features.select(train_ix), ctx.features.select(test_ix)
            split.counts.update(train_used=len(split.train_features), test_used=len(split.test_features))
        for name in names:
            t0 = time.perf_counter()
            metrics = PROTOCOLS[name](split)
            per_split[s][name] = metrics
            dt = time.perf_counter() - t0
            info["timings_s"][f"split{s}/{name}"] = dt
            log.info("split %d %s (%.1f s): %s", s, name, dt,
                     ", ".join(f"{m}={v:.4g}" for m, v in metrics.items()))
        info["videos"][str(s)] = split.counts
    info["timings_s"]["total"] = time.perf_counter() - t_start
    info["notes"] = _notes(names, cfg, settings)
    if info.get("skipped_count"):
        info["notes"].append(f"{info['skipped_count']} unreadable videos skipped (listed in info.skipped)")
    name = encoder_name or getattr(encoder, "encoder_name", None) or type(encoder).__name__
    return EvalResults(key, str(name), split_ids, names, per_split, info)
