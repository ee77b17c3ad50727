"""Map-style clip dataset (index + sampler + decoder) and the batch collation.

``ClipDataset[i]`` samples frame indices for video ``i`` with a generator seeded by
``(seed, epoch, i)``, so a sample does not depend on which DataLoader worker or DDP rank reads
it, and a resumed run sees the same clips. All views of a sample are decoded in one call
(``decoder.get_frames`` on the concatenated indices), then split.

A file that fails to decode, or overruns the per-file decode deadline
(:class:`~vidssl.data.deadline.DecodeDeadline`), or whose frames exceed ``max_frame_pixels``, is skipped, logged with its path and reason, and replaced by another
video; the skipped ``(path, reason)`` pairs travel inside the sample so the trainer can count
them across worker processes (``SkipCounter``). Only a run of ``max_attempts`` consecutive
failures, which means something systematic (a broken backend, an empty mount), raises.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from vidssl.data.deadline import DEFAULT_DECODE_TIMEOUT_S, DecodeDeadline
from vidssl.data.decoders import DEFAULT_BACKEND, DEFAULT_MAX_FRAME_PIXELS, decoder_class, open_video
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers.base import ClipSampler, SampledClips
from vidssl.errors import VideoDecodeError, VidsslError

log = logging.getLogger("vidssl.data")

ClipTransform = Callable[[torch.Tensor], torch.Tensor]


class ClipDataset(Dataset):
    """Videos of an index, sampled into views and decoded to ``uint8 (T, C, H, W)``.

    Args:
        index: the videos.
        sampler: turns ``(num_frames, fps, rng)`` into frame indices per view.
        decoder: backend name (``"torchcodec"``, ``"pyav"``, ``"decord"``).
        decoder_kwargs: passed to the backend (e.g. ``{"num_threads": 1}``).
        transform: optional per-view CPU transform on ``uint8 (T, C, H, W)`` (e.g. ``ResizeClip``
            so videos of different sizes can be batched). Random augmentation belongs on the
            device, batched, not here.
        seed: base seed of the per-sample generators.
        max_attempts: consecutive decode failures tolerated before raising.
        paired: ``(root, paired_root)``: also decode, at the same frame indices, the video at the
            same path relative to ``root`` under ``paired_root`` (e.g. precomputed optical flow
            written by ``tools/precompute_flow.py``); its views follow the main ones. Indices past
            the paired video's end are clamped (a flow video has one frame fewer). A missing or
            unreadable paired file skips the sample like a bad main file.
        decode_timeout_s: seconds one sample's decoding may take before its file is skipped as
            hung (``None``/0: no limit). Generous by default: it catches hangs, not slow disks.
        max_frame_pixels: files with larger frames are skipped (``None``: no limit).

    Returns (per item) a dict: ``views`` (list of ``uint8 (T, C, H, W)``), ``label`` (int),
    ``index`` (int, the position actually read), ``targets`` (dict), ``info`` (dict),
    ``skipped`` (list of ``(path, reason)`` for files skipped to produce this item).
    """

    def __init__(
        self,
        index: VideoIndex,
        sampler: ClipSampler,
        decoder: str = DEFAULT_BACKEND,
        decoder_kwargs: Mapping[str, Any] | None = None,
        transform: ClipTransform | None = None,
        seed: int = 0,
        max_attempts: int = 20,
        paired: tuple[str, str] | None = None,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
        max_frame_pixels: int | None = DEFAULT_MAX_FRAME_PIXELS,
    ):
        if len(index) == 0:
            raise VidsslError(f"dataset {index.name!r} has no videos")
        decoder_class(decoder).check_available()  # fail now, with the install hint
        self.index = index
        self.sampler = sampler
        self.decoder = decoder
        self.decoder_kwargs = dict(decoder_kwargs or {})
        self.transform = transform
        self.seed = int(seed)
        self.max_attempts = int(max_attempts)
        self.paired = None if paired is None else (os.fspath(paired[0]), os.fspath(paired[1]))
        self.deadline = DecodeDeadline(decode_timeout_s)
        self.max_frame_pixels = max_frame_pixels
        self.epoch = 0
        self._known_bad: set[int] = set()  # per process: files already seen to fail

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Change the sampling draw (call once per epoch, like ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def rng(self, i: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(i), attempt])

    def paired_path(self, path: str) -> str:
        root, paired_root = self.paired
        return os.path.join(paired_root, os.path.relpath(path, root))

    def load_paired(self, path: str, clips: SampledClips) -> list[torch.Tensor]:
        """The paired video's frames at ``clips``' indices, one tensor per view."""
        other = self.paired_path(path)
        if not os.path.exists(other):
            raise VideoDecodeError(other, f"paired video of {path} not found")
        with open_video(other, self.decoder, self.max_frame_pixels, **self.decoder_kwargs) as dec:
            last = dec.metadata.num_frames - 1
            frames = dec.get_frames(np.minimum(clips.all_indices, last))
        return list(torch.split(frames, [len(v) for v in clips.views]))

    def load(self, i: int, rng: np.random.Generator) -> tuple[list[torch.Tensor], SampledClips]:
        """Sample and decode video ``i`` (raises ``VideoDecodeError`` on a bad file)."""
        path = self.index.path(i)
        with open_video(path, self.decoder, self.max_frame_pixels, **self.decoder_kwargs) as dec:
            meta = dec.metadata
            num_frames, fps = int(self.index.num_frames[i]), float(self.index.fps[i])
            if meta.num_frames != num_frames:  # the file changed since indexing
                num_frames, fps = meta.num_frames, meta.fps
            clips = self.sampler(num_frames, fps, rng)
            frames = dec.get_frames(clips.all_indices)
        if len(clips.views) == 1:
            views = [frames]
        else:
            views = list(torch.split(frames, [len(v) for v in clips.views]))
        if self.paired is not None:
            views += self.load_paired(path, clips)
        if self.transform is not None:
            views = [self.transform(v) for v in views]
        return views, clips

    def __getitem__(self, i: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        pos = int(i)
        for attempt in range(self.max_attempts):
            if pos not in self._known_bad:
                try:
                    views, clips = self.deadline.run(self.index.path(pos), self.load, pos,
                                                     self.rng(pos, attempt))
                except VideoDecodeError as err:
                    self._known_bad.add(pos)
                    skipped.append((err.path, err.reason))
                    log.warning("skipping unreadable video %s: %s", err.path, err.reason)
                else:
                    return {
                        "views": views,
                        "label": int(self.index.labels[pos]),
                        "index": pos,
                        "group": int(self.index.groups[pos]),
                        "targets": dict(clips.targets),
                        "info": dict(clips.info),
                        "names": clips.names,
                        "skipped": skipped,
                    }
            pos = int(self.rng(i, attempt + 1).integers(len(self.index)))
        last = f"; last: {skipped[-1][0]}: {skipped[-1][1]}" if skipped else ""
        raise VidsslError(
            f"{self.max_attempts} consecutive videos of {self.index.name!r} could not be decoded "
            f"with backend {self.decoder!r}{last}"
        )


def collate_clips(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples view by view.

    Returns:
        ``views``: list (one per view) of ``uint8 (B, T, C, H, W)``; ``names``: view names;
        ``label``, ``index``, ``group``: ``int64 (B,)`` (``group`` -1 where the dataset has no
        groups); ``targets``: dict of stacked tensors;
        ``info``: dict of lists; ``skipped``: all ``(path, reason)`` pairs of the batch.
    """
    if not samples:
        raise VidsslError("cannot collate an empty batch")
    num_views = len(samples[0]["views"])
    views = []
    for v in range(num_views):
        shapes = {tuple(s["views"][v].shape) for s in samples}
        if len(shapes) > 1:
            raise VidsslError(
                f"view {v} has different shapes across the batch {sorted(shapes)}: videos differ "
                "in size; give the dataset transform=ResizeClip(size) to batch them"
            )
        views.append(torch.stack([s["views"][v] for s in samples]))
    targets = {
        k: torch.as_tensor(np.stack([np.asarray(s["targets"][k]) for s in samples]))
        for k in samples[0]["targets"]
    }
    return {
        "views": views,
        "names": tuple(samples[0]["names"]),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "group": torch.tensor([s.get("group", -1) for s in samples], dtype=torch.int64),
        "targets": targets,
        "info": {k: [s["info"][k] for s in samples] for k in samples[0]["info"]},
        "skipped": [pair for s in samples for pair in s["skipped"]],
    }


@dataclass
class SkipCounter:
    """Accumulates the files skipped across batches (and worker processes)."""

    count: int = 0
    paths: dict[str, str] = field(default_factory=dict)

    def update(self, batch: Mapping[str, Any]) -> None:
        for path, reason in batch.get("skipped", ()):
            self.count += 1
            self.paths.setdefault(path, reason)

    def summary(self, max_items: int = 5) -> str:
        if not self.count:
            return "no videos skipped"
        shown = "; ".join(f"{p}: {r}" for p, r in list(self.paths.items())[:max_items])
        more = f" (+{len(self.paths) - max_items} more files)" if len(self.paths) > max_items else ""
        return f"{self.count} samples skipped over {len(self.paths)} unreadable files: {shown}{more}"


def _worker_init(_: int) -> None:
    # One decode thread per worker: workers already parallelise across clips.
    torch.set_num_threads(1)


def build_loader(
    dataset: ClipDataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    num_workers: int = 0,
    drop_last: bool = True,
    seed: int = 0,
    distributed: bool | None = None,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` with ``collate_clips``.

    With ``distributed`` (default: whenever ``torch.distributed`` is initialised) a
    ``DistributedSampler`` splits the videos across ranks; call ``set_loader_epoch(loader, e)``
    each epoch so both the order and the clip draws change.
    """
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        base = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        base = EpochShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
    sampler = ResumableSampler(base)
    if drop_last and not distributed and len(dataset) < batch_size:
        raise VidsslError(f"dataset {dataset.index.name!r} has {len(dataset)} videos, fewer than "
                          f"one batch of {batch_size} with drop_last=True")
    extra = {}
    if num_workers > 0:
        extra = {"worker_init_fn": _worker_init, "persistent_workers": False,
                 "prefetch_factor": prefetch_factor or 2}
    # Its own generator: creating an iterator must not consume the global torch RNG, or a run
    # resumed mid-epoch would draw different augmentations than the uninterrupted run.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, drop_last=drop_last, pin_memory=pin_memory,
                      generator=generator, **extra)


def set_loader_epoch(loader: DataLoader, epoch: int, start_batch: int = 0) -> None:
    """Advance the epoch of the loader's sampler and dataset together.

    ``start_batch`` > 0 resumes inside the epoch: the first ``start_batch`` batches of this
    epoch's order are skipped without being read (exact for ``drop_last`` loaders).
    """
    sampler = loader.sampler
    if isinstance(sampler, ResumableSampler):
        sampler.set_epoch(epoch, start=start_batch * (loader.batch_size or 1))
    elif start_batch:
        raise VidsslError("this loader cannot resume inside an epoch (build it with build_loader)")
    elif hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)


class ResumableSampler(Sampler[int]):
    """Wraps a per-epoch-deterministic sampler so an epoch can start at a given position.

    The position is a count of samples of this rank's order; it applies to the next
    ``set_epoch`` only, so a resumed run reads exactly the samples the interrupted run had left.
    """

    def __init__(self, base: Sampler[int]):
        self.base = base
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        self.start = int(start)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.start)  # type: ignore[arg-type]

    def __iter__(self):
        it = iter(self.base)
        for _ in range(self.start):
            next(it, None)
        return it


class EpochShuffleSampler(Sampler[int]):
    """Single-process counterpart of ``DistributedSampler``: a permutation per ``(seed, epoch)``."""

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True):
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=gen).tolist())
