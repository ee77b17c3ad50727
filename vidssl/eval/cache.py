"""Frozen features, extracted once per (encoder, split set, views, pooling, tokens, BN mode).

Every frozen protocol of one evaluation (``linear`` and its presets, ``knn``, ``retrieval`` and
its presets, ``attentive``, ``diagnostics``) asks :class:`FeatureCache` for its features; the
first request extracts them, the others read them. With ``bn.mode=keep`` one extraction covers
the videos of every requested split (UCF101's three splits share 13,320 videos); with
``bn.mode=recompute`` each split gets its own copy of the encoder, re-estimated on that split's
train clips (:mod:`vidssl.eval.batchnorm`), so its features are extracted per split.

Tokens for the attentive probe are stored compactly: each view's last feature map is
average-pooled to at most ``attentive.token_grid`` cells (``4 x 7 x 7`` by default: a ViT-B/16
at 16 x 224 x 224 has 8 x 14 x 14 tokens, R3D-18 at 16 x 112 x 112 has 2 x 7 x 7) and kept in
float16: ``N x K x C x L x D x 2`` bytes (UCF101, 10 clips x 1 crop, R3D-18: 13,320 x 10 x 98 x
512 x 2 = 13 GB; choose fewer clips or a smaller grid for large sets).

With ``features.cache_dir`` set, each extracted set is also written there (one ``.pt`` file
named by a hash of the encoder's weights, the videos and the settings) and read back by a later
evaluation with the same key, so e.g. ``linear`` and ``attentive`` can run as two commands
without decoding the dataset twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from vidssl.data.index.core import VideoIndex
from vidssl.eval.batchnorm import batchnorm_layers, recompute_batchnorm, train_clip_batches
from vidssl.eval.features import FeatureSet, extract_features, resolve_clip_settings, union_index
from vidssl.eval.views import ViewSpec, view_sampler

log = logging.getLogger("vidssl.eval")

__all__ = ["FeatureCache", "FeatureKey", "default_views"]


def default_views(encoder: nn.Module, fc: Any) -> ViewSpec:
    """The shared feature views of ``EvalConfig.features`` (``None`` values from the encoder)."""
    s = resolve_clip_settings(encoder, fc.clip_len, fc.stride, fc.size, fc.resize_size)
    return ViewSpec(clip_len=s["clip_len"], stride=s["stride"], size=s["size"], resize_size=s["resize_size"],
                    num_clips=fc.num_clips, num_crops=fc.num_crops)


@dataclass(frozen=True)
class FeatureKey:
    views: ViewSpec
    pooling: str = "mean"
    token_grid: Optional[tuple[int, int, int]] = None
    clip_features: bool = False


class FeatureCache:
    """Feature sets of one evaluation (see the module docstring).

    Args:
        encoder: the encoder as given (never modified).
        indexes: split -> ``(train, test)``.
        config: the :class:`~vidssl.eval.config.EvalConfig`.
    """

    def __init__(self, encoder: nn.Module, indexes: dict[int, tuple[VideoIndex, VideoIndex]], config: Any,
                 device: torch.device, progress: bool = True, name: str = "all"):
        self.encoder, self.indexes, self.config = encoder, indexes, config
        self.device, self.progress, self.name = device, progress, name
        self.bn_layers = len(batchnorm_layers(encoder))
        self.recompute = config.bn.mode == "recompute" and self.bn_layers > 0
        self._encoders: dict[Optional[int], nn.Module] = {}
        self._sets: dict[tuple[Optional[int], FeatureKey], FeatureSet] = {}
        self.bn_batches: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self.extractions = 0

    # ---------------------------------------------------------------- encoders
    def group(self, split: int) -> Optional[int]:
        """The encoder a split's features come from: ``None`` (the one shared encoder) or the split."""
        return split if self.recompute else None

    def encoder_for(self, split: int) -> nn.Module:
        """The encoder as given, or (``bn.mode=recompute``) its copy with BatchNorm statistics
        re-estimated on ``split``'s train clips, through the shared feature views."""
        key = self.group(split)
        if key not in self._encoders:
            if key is None:
                self._encoders[key] = self.encoder
            else:
                bn, fc = self.config.bn, self.config.features
                v = default_views(self.encoder, fc)
                s = resolve_clip_settings(self.encoder, v.clip_len, v.stride, v.size, v.resize_size)
                t0 = time.perf_counter()
                batches = train_clip_batches(
                    self.indexes[split][0], batch_size=bn.batch_size, num_clips=v.num_clips,
                    num_crops=v.num_crops, clip_len=v.clip_len, stride=v.stride, size=v.size,
                    resize_size=v.resize_size, mean=s["mean"], std=s["std"], decoder=fc.decoder,
                    num_workers=fc.num_workers, seed=bn.seed, device=self.device)
                enc, used = recompute_batchnorm(self.encoder, batches, num_batches=bn.num_batches,
                                                device=self.device, amp=fc.amp)
                self._encoders[key] = enc
                self.bn_batches[str(split)] = used
                self.timings[f"split{split}/precise_bn"] = time.perf_counter() - t0
                log.info("precise BN on split %d: %d batches of %d train clips, %d BatchNorm layers",
                         split, used, bn.batch_size, self.bn_layers)
        return self._encoders[key]

    def videos(self, split: int) -> VideoIndex:
        """Every video a split's encoder group covers (all splits' videos with one shared encoder)."""
        key = self.group(split)
        pairs = list(self.indexes.values()) if key is None else [self.indexes[split]]
        suffix = "all" if key is None else f"split{split}"
        return union_index([ix for pair in pairs for ix in pair], f"{self.name}/{suffix}")

    # ---------------------------------------------------------------- features
    def features(self, split: int, views: ViewSpec | None = None, *, pooling: str = "mean",
                 token_grid: tuple[int, int, int] | None = None,
                 clip_features: bool = False) -> FeatureSet:
        """The features of every video of ``split`` (and of the splits sharing its encoder);
        select a split's train / test rows with :meth:`FeatureSet.select`. A request is served
        by an earlier extraction that holds at least what it asks for."""
        views = views or default_views(self.encoder, self.config.features)
        grid = None if token_grid is None else tuple(int(v) for v in token_grid)
        key = FeatureKey(views, pooling, grid, clip_features)
        group = self.group(split)
        for (g, k), fs in self._sets.items():
            if g == group and k.views == views and k.pooling == pooling \
                    and (grid is None or k.token_grid == grid) and (k.clip_features or not clip_features):
                return fs
        encoder = self.encoder_for(split)
        videos = self.videos(split)
        fs = self._load(encoder, videos, key)
        if fs is None:
            fc = self.config.features
            t0 = time.perf_counter()
            fs = extract_features(
                encoder, videos, num_clips=views.num_clips, num_crops=views.num_crops,
                clip_len=views.clip_len, stride=views.stride, size=views.size,
                resize_size=views.resize_size, batch_size=fc.batch_size, num_workers=fc.num_workers,
                device=self.device, decoder=fc.decoder, progress=self.progress,
                keep_clip_features=clip_features, amp=fc.amp,
                sampler=None if views.layout == "uniform" else view_sampler(views),
                pooling=pooling, token_grid=grid)
            label = "features" if len(self._sets) == 0 else f"features/{len(self._sets)}"
            self.timings[label] = time.perf_counter() - t0
            self.extractions += 1
            self._save(encoder, videos, key, fs)
            log.info("features (%s): %d videos x %d dims in %.1f s (%d skipped)", views.describe(),
                     len(fs), fs.features.shape[1], self.timings[label], len(fs.skipped))
        self._sets[(group, key)] = fs
        return fs

    def skipped(self) -> list[tuple[str, str]]:
        """Every video that could not be decoded, over all extractions (first occurrence)."""
        seen: dict[str, str] = {}
        for fs in self._sets.values():
            for path, reason in fs.skipped:
                seen.setdefault(path, reason)
        return list(seen.items())

    # ---------------------------------------------------------------- disk cache
    def _path(self, encoder: nn.Module, videos: VideoIndex, key: FeatureKey) -> str | None:
        folder = getattr(self.config.features, "cache_dir", None)
        if not folder:
            return None
        h = hashlib.sha256()
        for name, t in encoder.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps({"key": asdict(key), "paths": list(videos.paths),
                             "decoder": self.config.features.decoder,
                             "preprocess": str(getattr(encoder, "preprocess", None))},
                            sort_keys=True, default=str).encode())
        return os.path.join(folder, f"features-{h.hexdigest()[:24]}.pt")

    def _load(self, encoder: nn.Module, videos: VideoIndex, key: FeatureKey) -> FeatureSet | None:
        path = self._path(encoder, videos, key)
        if path is None or not os.path.isfile(path):
            return None
        d = torch.load(path, map_location="cpu", weights_only=True)
        log.info("features read from the cache %s", path)
        return FeatureSet(d["features"], np.asarray(d["labels"]), np.asarray(d["groups"]), list(d["paths"]),
                          np.asarray(d["positions"]), d.get("clip_features"),
                          [tuple(x) for x in d["skipped"]], list(d["class_names"]), d["name"],
                          dict(d["settings"]), d.get("tokens"))

    def _save(self, encoder: nn.Module, videos: VideoIndex, key: FeatureKey, fs: FeatureSet) -> None:
        path = self._path(encoder, videos, key)
        if path is None:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        torch.save({"features": fs.features, "labels": torch.as_tensor(fs.labels),
                    "groups": torch.as_tensor(fs.groups), "paths": fs.paths,
                    "positions": torch.as_tensor(fs.positions), "clip_features": fs.clip_features,
                    "skipped": [list(x) for x in fs.skipped], "class_names": fs.class_names,
                    "name": fs.name, "settings": json.loads(json.dumps(fs.settings, default=str)),
                    "tokens": fs.tokens}, tmp)
        os.replace(tmp, path)
