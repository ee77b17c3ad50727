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
            name or self.name, dict(self.settings))

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
    (left/centre/right for landscape frames), centred on the short side.
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
    else:
        raise ConfigError(f"num_crops must be 1 or 3, got {num_crops}")
    return [TF.crop(clip, t, l, size, size) for t, l in boxes]


class EvalClips(Dataset):
    """Videos as ``uint8 (K, C, T, 3, s, s)`` clip x crop stacks; a bad file gives its error.

    Items: ``{"position": i, "clips": tensor}`` or ``{"position": i, "error": (path, reason)}``.
    """

    def __init__(self, index: VideoIndex, *, num_clips: int, num_crops: int, clip_len: int,
                 stride: int, size: int, resize_size: int, decoder: str = DEFAULT_BACKEND):
        self.videos = ClipDataset(index, UniformMultiClipSampler(clip_len, stride, num_clips),
                                  decoder=decoder, decoder_kwargs={}, transform=ResizeClip(resize_size))
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
    good = [it for it in items if "clips" in it]
    return {
        "positions": torch.tensor([it["position"] for it in good], dtype=torch.int64),
        "clips": torch.stack([it["clips"] for it in good]) if good else None,
        "errors": [it["error"] for it in items if "error" in it],
    }


def encode_clips(
    fn: ClipFn,
    index: VideoIndex,
    *,
    num_clips: int,
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
) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, str]]]:
    """Run ``fn`` (``float (n, 3, T, s, s)`` -> ``(n, D)``) on every clip x crop of ``index``.

    Returns:
        ``(N, K, D)`` float32 outputs on the CPU, averaged over crops; the ``(N,)`` index
        positions of the videos that decoded; ``(path, reason)`` of those that did not.
    """
    if len(index) == 0:
        raise VidsslError(f"index {index.name!r} has no videos to encode")
    dev = resolve_device(device)
    k, c = int(num_clips), int(num_crops)
    data = EvalClips(index, num_clips=k, num_crops=c, clip_len=clip_len, stride=stride, size=size,
                     resize_size=resize_size, decoder=decoder)
    videos_per_batch = max(1, batch_size // (k * c))
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"prefetch_factor": 2, "worker_init_fn": _one_thread_worker}
    loader = DataLoader(data, batch_size=videos_per_batch, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_eval, **extra)
    norm = Compose([Normalize(mean, std), ToModelLayout()])
    outputs: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    skipped: list[tuple[str, str]] = []
    amp_dtype = autocast_dtype("auto" if amp else "off", dev)
    with progress_bar(progress, len(index), description) as advance, torch.no_grad():
        for batch in loader:
            skipped.extend(batch["errors"])
            advance(len(batch["positions"]) + len(batch["errors"]))
            if batch["clips"] is None:
                continue
            x = batch["clips"].to(dev, non_blocking=True)        # uint8 (B, K, C, T, 3, s, s)
            b = x.shape[0]
            flat = x.flatten(0, 2)                                 # (B*K*C, T, 3, s, s)
            outs = []
            for start in range(0, flat.shape[0], batch_size):
                with autocast(dev, amp_dtype):
                    y = fn(norm(flat[start:start + batch_size]))
                if y.ndim != 2:
                    raise VidsslError(f"expected (n, D) features from the encoder, got {tuple(y.shape)}")
                outs.append(y.float())
            y = torch.cat(outs).view(b, k, c, -1).mean(dim=2)
            outputs.append(y.cpu())
            positions.append(batch["positions"])
    if not outputs:
        raise VidsslError(f"no video of {index.name!r} could be decoded "
                          f"({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})")
    if skipped:
        log.warning("%s: %d of %d videos could not be decoded and were skipped", index.name,
                    len(skipped), len(index))
    return torch.cat(outputs), torch.cat(positions).numpy(), skipped


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside the block, its previous mode restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


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
) -> FeatureSet:
    """Frozen features of every video of ``index`` (encoder in eval mode, no grad).

    Args:
        encoder: a vidssl encoder (``forward_features``: ``(B, C, T, H, W)`` -> ``(B, D)``);
            it is moved to ``device``.
        index: the videos.
        num_clips, num_crops: ``K`` evenly spaced clips, ``C`` in {1, 3} crops each.
        clip_len, stride, size, resize_size: ``None`` takes ``encoder.preprocess``.
        batch_size: clips per encoder forward (a loader batch holds ``batch_size // (K*C)``
            videos, at least one).
        num_workers: decoding worker processes; device: ``"auto"``/``None`` picks CUDA if present.
        keep_clip_features: also return the ``(N, K, D)`` per-clip features.
        amp: bf16 autocast on CUDA.

    Returns:
        a :class:`FeatureSet` whose rows are the videos that decoded.
    """
    s = resolve_clip_settings(encoder, clip_len, stride, size, resize_size)
    dev = resolve_device(device)
    encoder.to(dev)
    fn = getattr(encoder, "forward_features", None) or encoder
    with eval_mode(encoder):
        per_clip, pos, skipped = encode_clips(
            fn, index, num_clips=num_clips, num_crops=num_crops, batch_size=batch_size,
            num_workers=num_workers, device=dev, decoder=decoder, progress=progress, amp=amp,
            description=f"features {index.name}", **s)
    settings = {**s, "num_clips": num_clips, "num_crops": num_crops, "decoder": decoder}
    return FeatureSet(
        features=per_clip.mean(dim=1), labels=index.labels[pos], groups=index.groups[pos],
        paths=[index.path(int(i)) for i in pos], positions=pos,
        clip_features=per_clip if keep_clip_features else None, skipped=skipped,
        class_names=list(index.class_names), name=index.name, settings=settings)
