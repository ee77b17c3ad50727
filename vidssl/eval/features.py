"""Frozen-encoder features: ``K`` evenly spaced clips x ``C`` spatial crops per video, averaged.

Per video: :class:`~vidssl.data.samplers.UniformMultiClipSampler` lays out ``K`` clips (10 by
default, the common protocol), the decoder reads them in one call, each clip's short side is
resized to ``resize_size`` (uint8, in the DataLoader worker) and cut into ``C`` square crops of
``size`` (1 = centre, 3 = start / centre / end of the long side, centred on the short side).
On the device: normalise with the encoder's mean/std, ``forward_features`` on ``(n, 3, T, s, s)``
in chunks of ``batch_size`` clips, average over crops (per-clip features) then over clips
(per-video features). Features are returned raw (not normalised): the protocols normalise.

A file that fails to decode is skipped, not replaced: its row is absent and
``FeatureSet.skipped`` names it with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vidssl.data.dataset import ClipDataset
from vidssl.data.decoders import DEFAULT_BACKEND
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import UniformMultiClipSampler
from vidssl.data.transforms import Compose, Normalize, ResizeClip, ToModelLayout
from vidssl.errors import ConfigError, VideoDecodeError, VidsslError
from vidssl.models.encoders.base import Preprocess
from vidssl.runtime.device import autocast, autocast_dtype, resolve_device
from vidssl.runtime.progress import progress_bar

log = logging.getLogger("vidssl.eval")

ClipFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FeatureSet:
    """Per-video features of one index (rows of videos that decoded).

    Attributes:
        features: float32 ``(N, D)``, mean over clips and crops (not normalised).
        labels, groups: int64 ``(N,)``; ``paths``: the ``N`` files.
        positions: int64 ``(N,)`` rows of the source index.
        clip_features: float32 ``(N, K, D)`` (crop-averaged, per clip) or ``None``.
        skipped: ``(path, reason)`` of each video that could not be decoded.
        class_names: label -> name; ``name``: the index name; ``settings``: how it was made.
        tokens: float16 ``(N, K, C, L, D)`` spatio-temporal tokens of every clip ``K`` and crop
            ``C`` (the encoder's last feature map average-pooled to at most ``token_grid``
            cells, ``L`` of them, in ``t, h, w`` order), or ``None``; read by the attentive probe.
    """

    features: torch.Tensor
    labels: np.ndarray
    groups: np.ndarray
    paths: list[str]
    positions: np.ndarray
    clip_features: torch.Tensor | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    name: str = "features"
    settings: dict[str, Any] = field(default_factory=dict)
    tokens: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def subset(self, rows: Sequence[int] | np.ndarray, name: str | None = None,
               skipped: list[tuple[str, str]] | None = None) -> "FeatureSet":
        """The rows ``rows`` (positions in this set), as a new set."""
        rows = np.asarray(rows, dtype=np.int64)
        t = torch.as_tensor(rows)
        return FeatureSet(
            self.features[t], self.labels[rows], self.groups[rows],
            [self.paths[i] for i in rows], self.positions[rows],
            None if self.clip_features is None else self.clip_features[t],
            list(self.skipped if skipped is None else skipped), self.class_names,
            name or self.name, dict(self.settings),
            None if self.tokens is None else self.tokens[t])

    def select(self, index: VideoIndex) -> "FeatureSet":
        """The rows of the videos of ``index`` (by path, in its order); videos of ``index`` that
        are absent here (skipped files) are absent from the result and listed in ``skipped``."""
        row_of = {p: i for i, p in enumerate(self.paths)}
        wanted = index.paths
        rows = [row_of[p] for p in wanted if p in row_of]
        reasons = dict(self.skipped)
        skipped = [(p, reasons.get(p, "no features extracted")) for p in wanted if p not in row_of]
        return self.subset(rows, name=index.name, skipped=skipped)


def union_index(indexes: Sequence[VideoIndex], name: str) -> VideoIndex:
    """One index holding every distinct path of ``indexes`` (the first occurrence's record)."""
    rows: dict[str, tuple[VideoIndex, int]] = {}
    for ix in indexes:
        for i in range(len(ix)):
            rows.setdefault(ix.path(i), (ix, i))
    col = lambda attr: [getattr(ix, attr)[i] for ix, i in rows.values()]  # noqa: E731
    return VideoIndex(list(rows), col("labels"), col("num_frames"), col("fps"), col("groups"),
                      indexes[0].class_names, indexes[0].group_names, name)


def resolve_clip_settings(encoder: nn.Module, clip_len: int | None = None, stride: int | None = None,
                          size: int | None = None, resize_size: int | None = None) -> dict[str, Any]:
    """Explicit values, else the encoder's ``preprocess`` (else :class:`Preprocess` defaults)."""
    pre = getattr(encoder, "preprocess", None)
    if not isinstance(pre, Preprocess):
        log.warning("encoder %s has no `preprocess`; using vidssl's defaults %s",
                    type(encoder).__name__, Preprocess())
        pre = Preprocess()
    out = {
        "clip_len": int(clip_len or pre.num_frames), "stride": int(stride or pre.stride),
        "size": int(size or pre.crop_size), "mean": tuple(pre.mean), "std": tuple(pre.std),
    }
    out["resize_size"] = int(resize_size or (pre.resize_size if size is None else round(out["size"] * 8 / 7)))
    if out["resize_size"] < out["size"]:
        raise ConfigError(f"resize_size {out['resize_size']} is smaller than the crop size {out['size']}")
    return out


def spatial_crops(clip: torch.Tensor, size: int, num_crops: int) -> list[torch.Tensor]:
    """Square crops of side ``size`` from ``(..., H, W)`` with ``min(H, W) >= size``.

    ``num_crops=1``: the centre crop. ``num_crops=3``: start, centre and end of the long side
    (left/centre/right for landscape frames), centred on the short side. ``5``: top-left,
    top-right, bottom-left, bottom-right, centre (torchvision's ``FiveCrop`` order). ``10``: those
    five, then the same five horizontally flipped (``TenCrop``).
    """
    h, w = clip.shape[-2:]
    if min(h, w) < size:
        raise VidsslError(f"frame {h}x{w} is smaller than the crop size {size}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    if num_crops == 1:
        boxes = [(top, left)]
    elif num_crops == 3:
        if w >= h:
            boxes = [(top, 0), (top, left), (top, w - size)]
        else:
            boxes = [(0, left), (top, left), (h - size, left)]
    elif num_crops in (5, 10):
        boxes = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    else:
        raise ConfigError(f"num_crops must be 1, 3, 5 or 10, got {num_crops}")
    crops = [TF.crop(clip, t, l, size, size) for t, l in boxes]
    if num_crops == 10:
        crops += [c.flip(-1) for c in crops]
    return crops


class EvalClips(Dataset):
    """Videos as ``uint8 (K, C, T, 3, s, s)`` clip x crop stacks; a bad file gives its error.

    Clips come from ``sampler`` (default: ``num_clips`` evenly spaced, :class:`UniformMultiClipSampler`;
    a sampler may give each video its own number of clips ``K``).
    Items: ``{"position": i, "clips": tensor}`` or ``{"position": i, "error": (path, reason)}``.
    """

    def __init__(self, index: VideoIndex, *, num_clips: int = 10, num_crops: int, clip_len: int,
                 stride: int, size: int, resize_size: int, decoder: str = DEFAULT_BACKEND,
                 sampler: Any = None):
        sampler = sampler or UniformMultiClipSampler(clip_len, stride, num_clips)
        self.videos = ClipDataset(index, sampler, decoder=decoder, decoder_kwargs={},
                                  transform=ResizeClip(resize_size))
        self.num_crops, self.size = num_crops, size

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            views, _ = self.videos.load(i, self.videos.rng(i))
        except VideoDecodeError as err:
            log.warning("skipping unreadable video %s: %s", err.path, err.reason)
            return {"position": i, "error": (err.path, err.reason)}
        crops = [torch.stack(spatial_crops(v, self.size, self.num_crops)) for v in views]
        return {"position": i, "clips": torch.stack(crops)}


def _one_thread_worker(_: int) -> None:
    # Workers decode and resize; parallelism comes from the workers, not intra-op threads.
    torch.set_num_threads(1)


def collate_eval(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``clips``: ``(B, K, C, T, 3, s, s)`` when every video has the same ``K``, else ``None`` and
    ``flat`` = all views ``(sum K_i*C, T, 3, s, s)`` with ``counts`` = ``[K_i]``."""
    good = [it for it in items if "clips" in it]
    same = len({it["clips"].shape[0] for it in good}) == 1
    out = {
        "positions": torch.tensor([it["position"] for it in good], dtype=torch.int64),
        "clips": torch.stack([it["clips"] for it in good]) if good and same else None,
        "errors": [it["error"] for it in items if "error" in it],
        "counts": [int(it["clips"].shape[0]) for it in good],
    }
    if good and not same:
        out["flat"] = torch.cat([it["clips"].flatten(0, 1) for it in good])
    return out


def _flat_views(batch: dict[str, Any]) -> torch.Tensor | None:
    """All views of a collated batch, ``(sum K_i*C, T, 3, s, s)``, video-major then clip, crop."""
    if batch["clips"] is not None:
        return batch["clips"].flatten(0, 2)
    return batch.get("flat")


OutputFn = Callable[[torch.Tensor], Any]


def iterate_views(
    fn: OutputFn,
    index: VideoIndex,
    *,
    num_crops: int,
    clip_len: int,
    stride: int,
    size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    num_clips: int = 10,
    sampler: Any = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    decoder: str = DEFAULT_BACKEND,
    progress: bool = True,
    amp: bool = True,
    description: str = "features",
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[torch.Tensor, list[Any]]]:
    """Run ``fn`` on every view of ``index``'s videos; yield, per loader batch, the index
    positions of the videos that decoded and, per video, ``fn``'s outputs over its views
    (a ``(K*C, ...)`` tensor, or a tuple of them when ``fn`` returns a tuple), clip-major then
    crop. Videos that fail to decode are appended to ``skipped`` as ``(path, reason)``.
    """
    if len(index) == 0:
        raise VidsslError(f"index {index.name!r} has no videos to encode")
    dev = resolve_device(device)
    data = EvalClips(index, num_clips=num_clips, num_crops=num_crops, clip_len=clip_len, stride=stride,
                     size=size, resize_size=resize_size, decoder=decoder, sampler=sampler)
    clips_per_video = getattr(sampler, "num_clips", num_clips) if sampler is not None else num_clips
    # a sampler with a per-video number of clips (sliding windows): one video per loader batch
    videos_per_batch = max(1, batch_size // (int(clips_per_video) * num_crops)) if clips_per_video else 1
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"prefetch_factor": 2, "worker_init_fn": _one_thread_worker}
    loader = DataLoader(data, batch_size=videos_per_batch, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_eval, **extra)
    norm = Compose([Normalize(mean, std), ToModelLayout()])
    amp_dtype = autocast_dtype("auto" if amp else "off", dev)
    skipped = [] if skipped is None else skipped
    with progress_bar(progress, len(index), description) as advance, torch.no_grad():
        for batch in loader:
            skipped.extend(batch["errors"])
            advance(len(batch["positions"]) + len(batch["errors"]))
            flat = _flat_views(batch)
            if flat is None:
                continue
            outs: list[Any] = []
            for start in range(0, flat.shape[0], batch_size):
                x = flat[start:start + batch_size].to(dev, non_blocking=True)   # uint8
                with autocast(dev, amp_dtype):
                    outs.append(fn(norm(x)))
            sizes = [k * num_crops for k in batch["counts"]]
            if isinstance(outs[0], tuple):
                parts = [torch.cat([o[j] for o in outs]).split(sizes) for j in range(len(outs[0]))]
                per_video = [tuple(p[i] for p in parts) for i in range(len(sizes))]
            else:
                per_video = list(torch.cat(outs).split(sizes))
            yield batch["positions"], per_video


def encode_clips(
    fn: ClipFn,
    index: VideoIndex,
    *,
    num_clips: int = 10,
    num_crops: int,
    clip_len: int,
    stride: int,
    size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    decoder: str = DEFAULT_BACKEND,
    progress: bool = True,
    amp: bool = True,
    description: str = "features",
    sampler: Any = None,
) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, str]]]:
    """Run ``fn`` (``float (n, 3, T, s, s)`` -> ``(n, D)``) on every clip x crop of ``index``.

    Returns:
        ``(N, K, D)`` float32 outputs on the CPU, averaged over crops (with a ``sampler`` that
        gives videos different numbers of clips, ``(N, 1, D)``: the mean over all views); the
        ``(N,)`` index positions of the videos that decoded; ``(path, reason)`` of those that did not.
    """
    outputs: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    skipped: list[tuple[str, str]] = []
    c = int(num_crops)
    fixed = sampler is None or getattr(sampler, "num_clips", None) is not None
    for pos, per_video in iterate_views(
            fn, index, num_clips=num_clips, num_crops=c, clip_len=clip_len, stride=stride, size=size,
            resize_size=resize_size, mean=mean, std=std, sampler=sampler, batch_size=batch_size,
            num_workers=num_workers, device=device, decoder=decoder, progress=progress, amp=amp,
            description=description, skipped=skipped):
        for y in per_video:
            if y.ndim != 2:
                raise VidsslError(f"expected (n, D) features from the encoder, got {tuple(y.shape)}")
            y = y.float().view(-1, c, y.shape[-1]).mean(dim=1)            # (K, D)
            outputs.append((y if fixed else y.mean(dim=0, keepdim=True)).cpu())
        positions.append(pos)
    if not outputs:
        raise VidsslError(f"no video of {index.name!r} could be decoded "
                          f"({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})")
    if skipped:
        log.warning("%s: %d of %d videos could not be decoded and were skipped", index.name,
                    len(skipped), len(index))
    return torch.stack(outputs), torch.cat(positions).numpy(), skipped


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside the block, its previous mode restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


POOLINGS = ("mean", "temporal", "mean_l2", "temporal_l2")


def pooled_tokens(feature_map: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """``(n, D, T', H', W')`` -> float16 ``(n, L, D)``: the map average-pooled to at most ``grid``
    cells per axis (an axis already smaller is kept), flattened in ``t, h, w`` order."""
    t, h, w = feature_map.shape[2:]
    size = (min(t, int(grid[0])), min(h, int(grid[1])), min(w, int(grid[2])))
    pooled = F.adaptive_avg_pool3d(feature_map.float(), size) if size != (t, h, w) else feature_map
    return pooled.flatten(2).transpose(1, 2).to(torch.float16)


def feature_function(encoder: nn.Module, pooling: str = "mean",
                     token_grid: Sequence[int] | None = None) -> ClipFn | OutputFn:
    """What runs on each batch of views: ``forward_features`` (``pooling="mean"``); the last
    feature map averaged over space with its temporal axis kept and flattened to
    ``(n, D * T')`` (``"temporal"``, TCLR's retrieval feature); ``"..._l2"``: each view's feature
    L2-normalised (before the average over views: CoCLR's retrieval); and with ``token_grid``
    also the map's tokens (:func:`pooled_tokens`). One forward when the encoder declares
    ``features_are_map_mean`` (its pooled feature is the mean of its map), else two."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    pooled = getattr(encoder, "forward_features", None) or encoder
    if pooling.startswith("temporal"):
        def temporal(x: torch.Tensor) -> torch.Tensor:
            m = encoder.forward_feature_map(x)
            return m.mean(dim=(3, 4)).flatten(1)
        pooled = temporal
    if pooling.endswith("_l2"):
        raw = pooled

        def normalised(x: torch.Tensor) -> torch.Tensor:
            return F.normalize(raw(x).float(), dim=1)
        pooled = normalised
    if token_grid is None:
        return pooled
    shared = pooling == "mean" and getattr(encoder, "features_are_map_mean", False)

    def with_tokens(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = encoder.forward_feature_map(x)
        feats = m.mean(dim=(2, 3, 4)) if shared else pooled(x)
        return feats, pooled_tokens(m, token_grid)

    return with_tokens


def extract_features(
    encoder: nn.Module,
    index: VideoIndex,
    *,
    num_clips: int = 10,
    num_crops: int = 1,
    clip_len: int | None = None,
    stride: int | None = None,
    size: int | None = None,
    resize_size: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    decoder: str = DEFAULT_BACKEND,
    progress: bool = True,
    keep_clip_features: bool = False,
    amp: bool = True,
    sampler: Any = None,
    pooling: str = "mean",
    token_grid: Sequence[int] | None = None,
) -> FeatureSet:
    """Frozen features of every video of ``index`` (encoder in eval mode, no grad).

    Args:
        encoder: a vidssl encoder (``forward_features``: ``(B, C, T, H, W)`` -> ``(B, D)``);
            it is moved to ``device``.
        index: the videos.
        num_clips, num_crops: ``K`` evenly spaced clips, ``C`` in {1, 3, 5, 10} crops each.
        clip_len, stride, size, resize_size: ``None`` takes ``encoder.preprocess``.
        batch_size: clips per encoder forward (a loader batch holds ``batch_size // (K*C)``
            videos, at least one).
        num_workers: decoding worker processes; device: ``"auto"``/``None`` picks CUDA if present.
        keep_clip_features: also return the ``(N, K, D)`` per-clip features.
        amp: bf16 autocast on CUDA.
        sampler: another clip layout (:mod:`vidssl.eval.views`); one that gives videos
            different numbers of clips cannot keep per-clip features or tokens.
        pooling: ``"mean"`` (``forward_features``) or ``"temporal"`` (see :func:`feature_function`).
        token_grid: also keep each view's tokens, pooled to at most ``(t, h, w)`` cells (fp16).

    Returns:
        a :class:`FeatureSet` whose rows are the videos that decoded.
    """
    s = resolve_clip_settings(encoder, clip_len, stride, size, resize_size)
    dev = resolve_device(device)
    encoder.to(dev)
    fn = feature_function(encoder, pooling, token_grid)
    fixed = sampler is None or getattr(sampler, "num_clips", None) is not None
    if not fixed and (keep_clip_features or token_grid is not None):
        raise ConfigError("per-clip features and tokens need the same number of clips per video")
    feats: list[torch.Tensor] = []
    toks: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    skipped: list[tuple[str, str]] = []
    c = int(num_crops)
    with eval_mode(encoder):
        for pos, per_video in iterate_views(
                fn, index, num_clips=num_clips, num_crops=c, batch_size=batch_size, sampler=sampler,
                num_workers=num_workers, device=dev, decoder=decoder, progress=progress, amp=amp,
                description=f"features {index.name}", skipped=skipped, **s):
            for out in per_video:
                y, t = out if token_grid is not None else (out, None)
                y = y.float().reshape(-1, c, y.shape[-1]).mean(dim=1)         # (K, D)
                feats.append((y if fixed else y.mean(dim=0, keepdim=True)).cpu())
                if t is not None:
                    toks.append(t.reshape(-1, c, *t.shape[1:]).cpu())       # (K, C, L, D)
            positions.append(pos)
    if not feats:
        raise VidsslError(f"no video of {index.name!r} could be decoded "
                          f"({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})")
    if skipped:
        log.warning("%s: %d of %d videos could not be decoded and were skipped", index.name,
                    len(skipped), len(index))
    per_clip = torch.stack(feats)
    pos = torch.cat(positions).numpy()
    settings = {**s, "num_clips": num_clips, "num_crops": num_crops, "decoder": decoder, "pooling": pooling}
    if sampler is not None:
        settings["sampler"] = type(sampler).__name__
    if token_grid is not None:
        settings["token_grid"] = [int(v) for v in token_grid]
    return FeatureSet(
        features=per_clip.mean(dim=1), labels=index.labels[pos], groups=index.groups[pos],
        paths=[index.path(int(i)) for i in pos], positions=pos,
        clip_features=per_clip if keep_clip_features else None, skipped=skipped,
        class_names=list(index.class_names), name=index.name, settings=settings,
        tokens=torch.stack(toks) if toks else None)
