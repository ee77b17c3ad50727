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

from vidssl.data.index import build_index
from vidssl.data.index.core import VideoIndex
from vidssl.eval.config import EvalConfig
from vidssl.eval.features import FeatureSet, extract_features, resolve_clip_settings, resolve_device
from vidssl.eval.finetune import finetune
from vidssl.eval.protocols import FEATURE_PROTOCOLS, resolve_protocols, run_feature_protocol
from vidssl.eval.report import EvalResults
from vidssl.errors import ConfigError

log = logging.getLogger("vidssl.eval")

EVAL_DATASETS: tuple[str, ...] = ("synthetic", "ucf101", "hmdb51")
MAX_SKIPPED_LISTED = 20


def resolve_splits(dataset: str, splits: Sequence[int] | int | None) -> list[int]:
    """``None`` -> (1, 2, 3); values must be positive (1-3 for UCF101/HMDB51), no repeats."""
    if splits is None:
        return [1, 2, 3]
    values = [splits] if isinstance(splits, int) else list(splits)
    if not values:
        raise ConfigError("no split given")
    out = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ConfigError(f"split must be a positive integer, got {s!r}")
        if dataset in ("ucf101", "hmdb51") and s > 3:
            raise ConfigError(f"{dataset} has splits 1, 2 and 3, got {s}")
        if int(s) not in out:
            out.append(int(s))
    return out


def union_index(indexes: Sequence[VideoIndex], name: str) -> VideoIndex:
    """One index holding every distinct path of ``indexes`` (the first occurrence's record)."""
    rows: dict[str, tuple[VideoIndex, int]] = {}
    for ix in indexes:
        for i in range(len(ix)):
            rows.setdefault(ix.path(i), (ix, i))
    paths = list(rows)
    col = lambda attr: [getattr(ix, attr)[i] for ix, i in rows.values()]  # noqa: E731
    return VideoIndex(paths, col("labels"), col("num_frames"), col("fps"), col("groups"),
                      indexes[0].class_names, indexes[0].group_names, name)


def _notes(protocols: list[str], cfg: EvalConfig, settings: dict[str, Any]) -> list[str]:
    notes = []
    if FEATURE_PROTOCOLS & set(protocols):
        crop = "centre crop" if settings["num_crops"] == 1 else "3 crops along the long side"
        notes.append(f"frozen features: {settings['num_clips']} evenly spaced clips of "
                     f"{settings['clip_len']} frames (stride {settings['stride']}) x {crop} of "
                     f"{settings['size']} px (short side {settings['resize_size']}), averaged")
    if "linear" in protocols:
        notes.append("linear: L-BFGS logistic regression on L2-normalised features; weight decay "
                     "chosen on a group-aware validation part of train, refit on train")
    if "knn" in protocols:
        notes.append(f"knn: cosine, k={cfg.knn.k}, votes weighted by exp(s/{cfg.knn.temperature})")
    if "retrieval" in protocols:
        notes.append("retrieval: test queries the train gallery, cosine; features "
                     + ("mean-centred (train mean)" if cfg.retrieval.center else "not mean-centred"))
    if "diagnostics" in protocols:
        notes.append("diagnostics on test features: alignment over adjacent clips, uniformity t=2, "
                     "effective rank of the covariance; probe/* = linear probes per factor")
    if "zeroshot" in protocols:
        z = cfg.zeroshot
        notes.append(f"zeroshot: CLIP text classifier, {len(z.templates) or 'vidssl video'} template(s)"
                     + (f" + attributes ({z.attributes})" if z.attributes else "")
                     + f", multi-clip video embedding, logits x{z.logit_scale:g}; test lists only")
    if "finetune" in protocols:
        f = cfg.finetune
        notes.append(f"finetune: {f.epochs} epoch(s), AdamW lr {f.lr:g} wd {f.weight_decay:g}, "
                     f"cosine; test {f.test_clips} clips x {f.test_crops} crops")
    return notes


def _zeroshot_setup(encoder: nn.Module, spec: Any, indexes: dict, key: str, feats: FeatureSet | None,
                    cfg: EvalConfig, dev, progress: bool, info: dict[str, Any]) -> dict[str, Any]:
    """Text classifier weights and test-video embeddings in CLIP space for ``zeroshot``."""
    from vidssl.eval.zeroshot import ZeroShotEncoder, class_weights, zeroshot_spec_from_encoder

    spec = spec or zeroshot_spec_from_encoder(encoder)
    t0 = time.perf_counter()
    class_names = list(next(iter(indexes.values()))[1].class_names)
    weights = class_weights(class_names, spec, templates=list(cfg.zeroshot.templates),
                            attributes=cfg.zeroshot.attributes, vocabulary=key, device=dev)
    if isinstance(spec.head, nn.Identity) and feats is not None:
        zs_feats = feats                       # the encoder already embeds in CLIP space
    else:
        fc = cfg.features
        tests = union_index([pair[1] for pair in indexes.values()], f"{key}/test")
        model = ZeroShotEncoder(encoder, spec.head, int(weights.shape[0]))
        zs_feats = extract_features(
            model, tests, num_clips=fc.num_clips, num_crops=fc.num_crops, clip_len=fc.clip_len,
            stride=fc.stride, size=fc.size, resize_size=fc.resize_size, batch_size=fc.batch_size,
            num_workers=fc.num_workers, device=dev, decoder=fc.decoder, progress=progress, amp=fc.amp)
    info["timings_s"]["zeroshot_setup"] = time.perf_counter() - t0
    info["zeroshot"] = {"text_tower": f"{spec.clip_model}/{spec.clip_pretrained or 'random-init'}",
                        "source": spec.source, "classes": len(class_names)}
    return {"features": zs_feats, "weights": weights}


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
        dataset: ``"synthetic"``, ``"ucf101"`` or ``"hmdb51"`` (read with ``build_index``).
        root: the dataset folder.
        splits: default (1, 2, 3).
        protocols: ``"all"`` (all but zeroshot) or names from ``linear knn retrieval finetune
            diagnostics zeroshot``.
        config: :class:`~vidssl.eval.config.EvalConfig` (defaults documented there).
        device: overrides ``config.device`` (``"auto"``: CUDA when present).
        index_kwargs: extra ``build_index`` arguments (``annotations=``, ``cache=``, ...).
        zeroshot: a :class:`~vidssl.eval.zeroshot.ZeroShotSpec` (head into CLIP space and text
            tower) for the ``zeroshot`` protocol; default: the encoder's own (CLIP-temporal).

    Returns:
        :class:`~vidssl.eval.report.EvalResults` with per-split and mean numbers.
    """
    cfg = (config or EvalConfig()).validate()
    key = str(dataset).strip().lower()
    if key not in EVAL_DATASETS:
        raise ConfigError(f"evaluation dataset must be one of {list(EVAL_DATASETS)}, got {dataset!r}")
    names = resolve_protocols(protocols)
    split_ids = resolve_splits(key, splits)
    dev = resolve_device(device or cfg.device)
    t_start = time.perf_counter()
    kw = {"progress": False, **(index_kwargs or {})}
    indexes = {s: tuple(build_index(key, root, split=s, subset=sub, **kw) for sub in ("train", "test"))
               for s in split_ids}
    info: dict[str, Any] = {"config": dataclasses.asdict(cfg), "device": str(dev), "root": os.fspath(root),
                            "timings_s": {}, "videos": {}, "skipped": []}
    feats: FeatureSet | None = None
    fc = cfg.features
    settings = {"num_clips": fc.num_clips, "num_crops": fc.num_crops,
                **resolve_clip_settings(encoder, fc.clip_len, fc.stride, fc.size, fc.resize_size)}
    if FEATURE_PROTOCOLS & set(names):
        all_videos = union_index([ix for pair in indexes.values() for ix in pair], f"{key}/all")
        t0 = time.perf_counter()
        feats = extract_features(
            encoder, all_videos, num_clips=fc.num_clips, num_crops=fc.num_crops,
            clip_len=fc.clip_len, stride=fc.stride, size=fc.size, resize_size=fc.resize_size,
            batch_size=fc.batch_size, num_workers=fc.num_workers, device=dev, decoder=fc.decoder,
            progress=progress, keep_clip_features="diagnostics" in names, amp=fc.amp)
        info["timings_s"]["features"] = time.perf_counter() - t0
        info["skipped"] = [list(p) for p in feats.skipped[:MAX_SKIPPED_LISTED]]
        info["skipped_count"] = len(feats.skipped)
        log.info("features: %d videos x %d dims in %.1f s (%d skipped)", len(feats),
                 feats.features.shape[1], info["timings_s"]["features"], len(feats.skipped))
    zs = None
    if "zeroshot" in names:
        zs = _zeroshot_setup(encoder, zeroshot, indexes, key, feats, cfg, dev, progress, info)
    per_split: dict[int, dict[str, dict[str, float]]] = {}
    for s, (train_ix, test_ix) in indexes.items():
        per_split[s] = {}
        counts: dict[str, int] = {"train": len(train_ix), "test": len(test_ix)}
        train_fs = test_fs = None
        if feats is not None:
            train_fs, test_fs = feats.select(train_ix), feats.select(test_ix)
            counts.update(train_used=len(train_fs), test_used=len(test_fs))
        for name in names:
            t0 = time.perf_counter()
            if name == "zeroshot":
                from vidssl.eval.zeroshot import zeroshot_classify

                test_zs = zs["features"].select(test_ix)
                metrics = zeroshot_classify(test_zs.features, test_zs.labels, zs["weights"],
                                            cfg.zeroshot.logit_scale)
                counts["zeroshot_test_used"] = len(test_zs)
            elif name == "finetune":
                res = finetune(encoder, train_ix, test_ix, config=cfg.finetune, device=dev,
                               progress=progress)
                metrics = res.metrics()
                counts["finetune_test_skipped"] = len(res.skipped_test)
            else:
                metrics = run_feature_protocol(name, train_fs, test_fs, cfg, device=dev,
                                               root=root if key == "synthetic" else None)
            per_split[s][name] = metrics
            dt = time.perf_counter() - t0
            info["timings_s"][f"split{s}/{name}"] = dt
            log.info("split %d %s (%.1f s): %s", s, name, dt,
                     ", ".join(f"{m}={v:.4g}" for m, v in metrics.items()))
        info["videos"][str(s)] = counts
    info["timings_s"]["total"] = time.perf_counter() - t_start
    info["notes"] = _notes(names, cfg, settings)
    if info.get("skipped_count"):
        info["notes"].append(f"{info['skipped_count']} unreadable videos skipped (listed in info.skipped)")
    name = encoder_name or getattr(encoder, "encoder_name", None) or type(encoder).__name__
    return EvalResults(key, str(name), split_ids, names, per_split, info)
