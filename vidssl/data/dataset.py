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

import contextlib
import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from vidssl.data.deadline import DEFAULT_DECODE_TIMEOUT_S, DecodeDeadline
from vidssl.data.decoders import (DEFAULT_BACKEND, DEFAULT_MAX_FRAME_PIXELS, decoder_class,
                                   decoder_device, open_video)
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
        fallback_decoder: a second backend for files the first cannot read (e.g. ``torchcodec``
            behind a GPU decoder, for codecs NVDEC lacks); the sample's ``fallbacks`` lists them.

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
        fallback_decoder: str | None = None,
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
        if fallback_decoder is not None:
            decoder_class(fallback_decoder).check_available()
        self.fallback_decoder = fallback_decoder if fallback_decoder != decoder else None
        self._fallbacks: list[tuple[str, str]] = []
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

    def _decode(self, path: str, i: int, rng: np.random.Generator, backend: str,
                kwargs: Mapping[str, Any]) -> tuple[torch.Tensor, SampledClips]:
        with open_video(path, backend, self.max_frame_pixels, **kwargs) as dec:
            meta = dec.metadata
            num_frames, fps = int(self.index.num_frames[i]), float(self.index.fps[i])
            if meta.num_frames != num_frames:  # the file changed since indexing
                num_frames, fps = meta.num_frames, meta.fps
            clips = self.sampler(num_frames, fps, rng)
            return dec.get_frames(clips.all_indices), clips

    def load(self, i: int, rng: np.random.Generator) -> tuple[list[torch.Tensor], SampledClips]:
        """Sample and decode video ``i`` (raises ``VideoDecodeError`` on a bad file). With a
        ``fallback_decoder``, a file the main backend cannot read is decoded by that one (same
        clip draw; frames moved to the main backend's device) and noted in ``fallbacks``."""
        path = self.index.path(i)
        spare = copy.deepcopy(rng) if self.fallback_decoder else None
        try:
            frames, clips = self._decode(path, i, rng, self.decoder, self.decoder_kwargs)
        except VideoDecodeError as err:
            if spare is None:
                raise
            frames, clips = self._decode(path, i, spare, self.fallback_decoder, {})
            if decoder_device(self.decoder) == "cuda":
                frames = frames.to("cuda", non_blocking=True)
            self._fallbacks.append((path, err.reason))
            log.info("decoded %s with %s instead of %s: %s", path, self.fallback_decoder,
                     self.decoder, err.reason)
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
        self._fallbacks = []
        pos = int(i)
        for attempt in range(self.max_attempts):
            if pos in self._known_bad:  # warned about once; still counted each time it is drawn
                skipped.append((self.index.path(pos), "unreadable (seen before)"))
            else:
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
                        "fallbacks": list(self._fallbacks),
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
        ``info``: dict of lists; ``skipped``: all ``(path, reason)`` pairs of the batch;
        ``fallbacks``: ``(path, reason)`` of the files read by the fallback decoder.
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
        "fallbacks": [pair for s in samples for pair in s.get("fallbacks", ())],
    }


def batch_to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors (views, targets, label, index, group) on ``device`` (non-blocking)."""
    out = dict(batch)
    out["views"] = [v.to(device, non_blocking=True) for v in batch["views"]]
    out["targets"] = {k: v.to(device, non_blocking=True) for k, v in batch["targets"].items()}
    out["label"] = batch["label"].to(device, non_blocking=True)
    for key in ("index", "group"):
        if key in batch:
            out[key] = batch[key].to(device, non_blocking=True)
    return out


@dataclass
class SkipCounter:
    """Accumulates the files skipped across batches (and worker processes)."""

    count: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    fallbacks: int = 0

    def update(self, batch: Mapping[str, Any]) -> None:
        for path, reason in batch.get("skipped", ()):
            self.count += 1
            self.paths.setdefault(path, reason)
        self.fallbacks += len(batch.get("fallbacks", ()))

    def merge(self, other: "SkipCounter") -> None:
        self.count += other.count
        self.fallbacks += other.fallbacks
        for path, reason in other.paths.items():
            self.paths.setdefault(path, reason)

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "paths": dict(self.paths), "fallbacks": self.fallbacks}

    @classmethod
    def from_state(cls, state: Any) -> "SkipCounter":
        if isinstance(state, int):  # checkpoints before per-rank counters: a bare count
            return cls(count=state)
        return cls(int(state.get("count", 0)), dict(state.get("paths", {})), int(state.get("fallbacks", 0)))

    def summary(self, max_items: int = 5) -> str:
        fell_back = (f"; {self.fallbacks} samples decoded by the fallback decoder"
                     if self.fallbacks else "")
        if not self.count:
            return "no videos skipped" + fell_back
        shown = "; ".join(f"{p}: {r}" for p, r in list(self.paths.items())[:max_items])
        more = f" (+{len(self.paths) - max_items} more files)" if len(self.paths) > max_items else ""
        return (f"{self.count} samples skipped over {len(self.paths)} unreadable files: "
                f"{shown}{more}{fell_back}")


def _worker_init(_: int) -> None:
    # One decode thread per worker: workers already parallelise across clips.
    torch.set_num_threads(1)
    # torchrun's agent (os.killpg) and a terminal's Ctrl-C signal the whole process group. The
    # main process answers by finishing its step, checkpointing and closing the loader; a worker
    # killed by the same signal would instead make it fail at once ("DataLoader worker ...
    # killed by signal", raised from torch's SIGCHLD handler) before it can save. In a process
    # group of its own the worker only hears from its parent: the loader's shutdown, torch's
    # terminate() of a stuck worker, or its watchdog when the parent dies.
    if hasattr(os, "setpgid"):  # not permitted (e.g. a session leader): keep the default group
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)


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
    persistent_workers: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` with ``collate_clips``.

    With ``distributed`` (default: whenever ``torch.distributed`` is initialised) a
    ``DistributedSampler`` splits the videos across ranks; call ``set_loader_epoch(loader, e)``
    each epoch so both the order and the clip draws change.
    """
    if num_workers > 0 and decoder_device(dataset.decoder) != "cpu":
        raise VidsslError(f"decoder {dataset.decoder!r} returns GPU frames, which DataLoader worker "
                          "processes cannot produce: use data.loader=device (vidssl.data."
                          "device_loader.DeviceLoader) or num_workers=0")
    sampler = epoch_sampler(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                            distributed=distributed)
    extra = {}
    if num_workers > 0:
        extra = {"worker_init_fn": _worker_init, "persistent_workers": persistent_workers,
                 "prefetch_factor": prefetch_factor or 2}
    # Its own generator: creating an iterator must not consume the global torch RNG, or a run
    # resumed mid-epoch would draw different augmentations than the uninterrupted run.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, drop_last=drop_last, pin_memory=pin_memory,
                      generator=generator, **extra)


def epoch_sampler(dataset: ClipDataset, batch_size: int, *, shuffle: bool = True,
                  drop_last: bool = True, seed: int = 0,
                  distributed: bool | None = None) -> "ResumableSampler":
    """The per-epoch, resumable order of ``dataset`` for this rank (``build_loader`` and
    ``DeviceLoader`` share it): ``DistributedSampler`` under ``torch.distributed``, else a seeded
    per-epoch shuffle."""
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        base = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        base = EpochShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
    if drop_last and not distributed and len(dataset) < batch_size:
        raise VidsslError(f"dataset {dataset.index.name!r} has {len(dataset)} videos, fewer than "
                          f"one batch of {batch_size} with drop_last=True")
    return ResumableSampler(base)


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
