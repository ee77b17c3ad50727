"""Map-style clip dataset (index + sampler + decoder) and the batch collation.

``ClipDataset[i]`` samples frame indices for video ``i`` with a generator seeded by
``(seed, epoch, i)``, so a sample does not depend on which DataLoader worker or DDP rank reads
it, and a resumed run sees the same clips. All views of a sample are decoded in one call
(``decoder.get_frames`` on the concatenated indices), then split.

A file that fails to decode, or overruns the per-file decode deadline
(:class:`~vidssl.data.deadline.DecodeDeadline`), or whose frames exceed ``max_frame_pixels``, is
skipped, logged with its path and reason, and replaced by another video; the skipped
``(path, reason)`` pairs travel inside the sample so the trainer can count them across worker
processes (``SkipCounter``). A file that opens but whose clip hits frames that do not decode (a
corrupt packet: :class:`~vidssl.data.decoders.FrameDecodeError`) is first re-drawn at other
positions (``clip_retries`` times) before it is given up. Only a run of ``max_attempts``
consecutive failures, which means something systematic (a broken backend, an empty mount),
raises.

Errors raised inside DataLoader worker processes reach the caller as the one-line vidssl error
they were, not as torch's multi-line re-raise of the worker's traceback (:class:`ClipLoader`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from vidssl.data.deadline import DEFAULT_DECODE_TIMEOUT_S, DecodeDeadline, beat
from vidssl.data.decoders import (DEFAULT_BACKEND, DEFAULT_MAX_FRAME_PIXELS, FrameDecodeError,
                                   decoder_class, decoder_device, open_video)
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers.base import ClipSampler, SampledClips
from vidssl import errors
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
        clip_retries: when a file opens but frames of the drawn clip do not decode
            (``FrameDecodeError``: a corrupt packet), how many other clips of the same file are
            drawn before the file is given up (each is listed in the sample's ``retried``).

    Returns (per item) a dict: ``views`` (list of ``uint8 (T, C, H, W)``), ``label`` (int),
    ``index`` (int, the position actually read), ``targets`` (dict), ``info`` (dict),
    ``skipped`` (list of ``(path, reason)`` for files skipped to produce this item),
    ``retried`` (``(path, reason)`` of clips re-drawn at another position of their file).
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
        clip_retries: int = 3,
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
        self.clip_retries = max(0, int(clip_retries))
        self.epoch = 0
        self._known_bad: set[int] = set()  # per process: files already seen to fail
        self._overran: dict[int, str] = {}  # files abandoned at the deadline, not yet reported
        # build_loader sets it: __getitems__ then also collates (collate_clips) on the helper
        self.collate_in_batch = False

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Change the sampling draw (call once per epoch, like ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def rng(self, i: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(i), attempt])

    def retry_rng(self, i: int, attempt: int, retry: int) -> np.random.Generator:
        """The draw of another clip of the same file after frames of the first did not decode
        (``retry`` >= 1); like :meth:`rng`, a function of the seed, epoch and position only."""
        return np.random.default_rng([self.seed, self.epoch, int(i), attempt, 1_000 + retry])

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
        token = int(self.index.seek_tokens[i])
        if token and getattr(decoder_class(backend), "accepts_verified_seek", False):
            kwargs = {**kwargs, "verified_seek": token}  # seeking verified when indexed
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

    def _read(self, pos: int, attempt: int,
              retried: list[tuple[str, str]]) -> tuple[list[torch.Tensor], SampledClips]:
        """Decode a clip of video ``pos``; when frames of it do not decode (``FrameDecodeError``)
        draw up to ``clip_retries`` other clips of the same file (noted in ``retried``) before
        raising. Runs on the deadline's helper thread (:meth:`__getitems__`); ``beat`` starts
        this file's deadline."""
        path = self.index.path(pos)
        for retry in range(self.clip_retries + 1):
            try:
                rng = self.rng(pos, attempt) if retry == 0 else self.retry_rng(pos, attempt, retry)
                beat(path, pos)
                return self.load(pos, rng)
            except FrameDecodeError as err:
                if retry == self.clip_retries:
                    raise VideoDecodeError(err.path, f"{err.reason} (and at {retry} other "
                                           "positions of the file)") from None
                retried.append((err.path, err.reason))
                log.info("re-drawing a clip of %s at another position: %s", err.path, err.reason)
        raise AssertionError("unreachable")

    def __getitem__(self, i: int) -> dict[str, Any]:
        items, _ = self.deadline.run_batch([functools.partial(self._item, int(i))],
                                           self._overrun)
        return items[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items ``indices`` (what ``DataLoader`` calls with a batch's positions): decoded on the
        deadline's helper thread in one hand-off; a file that overruns the deadline is marked
        unreadable and the item it was decoding is drawn again (its skips then name the file
        with the timeout as the reason)."""
        calls = [functools.partial(self._item, int(i)) for i in indices]
        # With collate_in_batch the batch is also stacked on the helper thread, where the frames
        # were just decoded (their core's cache): measured ~3% of a 64x64 clip's time.
        items, batch = self.deadline.run_batch(
            calls, self._overrun, then=collate_clips if self.collate_in_batch else None)
        return CollatedItems(items, batch) if self.collate_in_batch else items

    def _overrun(self, k: int, err: VideoDecodeError, pos: Any) -> None:
        """A file decode ran past the deadline (``pos``: its position in the index)."""
        if pos is not None:
            self._known_bad.add(int(pos))
            self._overran[int(pos)] = err.reason
        log.warning("skipping unreadable video %s: %s", err.path, err.reason)

    def _item(self, i: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        retried: list[tuple[str, str]] = []
        self._fallbacks = []
        pos = int(i)
        for attempt in range(self.max_attempts):
            if pos in self._known_bad:  # warned about once; still counted each time it is drawn
                skipped.append((self.index.path(pos),
                                self._overran.pop(pos, "unreadable (seen before)")))
            else:
                try:
                    views, clips = self._read(pos, attempt, retried)
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
                        "retried": retried,
                        "fallbacks": list(self._fallbacks),
                    }
            pos = int(self.rng(i, attempt + 1).integers(len(self.index)))
        last = f"; last: {skipped[-1][0]}: {skipped[-1][1]}" if skipped else ""
        raise VidsslError(
            f"{self.max_attempts} consecutive videos of {self.index.name!r} could not be decoded "
            f"with backend {self.decoder!r}{last}"
        )


class CollatedItems(list):
    """The items of :meth:`ClipDataset.__getitems__`, with their ``collate_clips`` batch
    already made (``batch``); :func:`collate_clips` returns it as is."""

    def __init__(self, items: list, batch: dict[str, Any]):
        super().__init__(items)
        self.batch = batch


def collate_clips(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples view by view.

    Returns:
        ``views``: list (one per view) of ``uint8 (B, T, C, H, W)``; ``names``: view names;
        ``label``, ``index``, ``group``: ``int64 (B,)`` (``group`` -1 where the dataset has no
        groups); ``targets``: dict of stacked tensors;
        ``info``: dict of lists; ``skipped``: all ``(path, reason)`` pairs of the batch;
        ``retried``: clips re-drawn at another position of their file;
        ``fallbacks``: ``(path, reason)`` of the files read by the fallback decoder.
    """
    if isinstance(samples, CollatedItems):
        return samples.batch
    if not samples:
        raise VidsslError("cannot collate an empty batch")
    num_views = len(samples[0]["views"])
    views = []
    for v in range(num_views):
        shapes = {tuple(s["views"][v].shape) for s in samples}
        if len(shapes) > 1:
            raise VidsslError(
                f"view {v} has different shapes across the batch {sorted(shapes)}: the videos "
                "differ in size; set data.crop (and data.resize) in the config to bring every "
                "clip to one size (docs/training.md), or give ClipDataset "
                "transform=clip_transform(resize, crop)"
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
        "retried": [pair for s in samples for pair in s.get("retried", ())],
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
    """What a run lost to unreadable videos, counted across batches (and worker processes).

    Attributes:
        count: samples whose first choice of video was skipped at train time (a file counts
            every time it is drawn); ``paths``: those files and their first reason.
        retried: clips re-drawn at another position of a file whose frames did not decode
            (the file was kept); ``retried_paths``: those files.
        fallbacks: samples decoded by the fallback decoder.
        index_dropped: files the index build left out (missing or unreadable when probed),
            ``(path, reason)``; set once from the index (:meth:`for_index`), not summed over ranks.
    """

    count: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    fallbacks: int = 0
    retried: int = 0
    retried_paths: dict[str, str] = field(default_factory=dict)
    index_dropped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def for_index(cls, index: VideoIndex) -> "SkipCounter":
        """An empty counter that knows which files ``index`` dropped while it was built."""
        report = index.report
        dropped = [(p, "missing") for p in report.missing]
        dropped += [(f.path, f.reason) for f in report.failed]
        return cls(index_dropped=dropped)

    def update(self, batch: Mapping[str, Any]) -> None:
        for path, reason in batch.get("skipped", ()):
            self.count += 1
            self.paths.setdefault(path, reason)
        for path, reason in batch.get("retried", ()):
            self.retried += 1
            self.retried_paths.setdefault(path, reason)
        self.fallbacks += len(batch.get("fallbacks", ()))

    def merge(self, other: "SkipCounter") -> None:
        """Add ``other``'s train-time counts (another rank's); index drops are not summed."""
        self.count += other.count
        self.fallbacks += other.fallbacks
        self.retried += other.retried
        for path, reason in other.paths.items():
            self.paths.setdefault(path, reason)
        for path, reason in other.retried_paths.items():
            self.retried_paths.setdefault(path, reason)

    def nonempty(self) -> bool:
        return bool(self.count or self.retried or self.fallbacks or self.index_dropped)

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "paths": dict(self.paths), "fallbacks": self.fallbacks,
                "retried": self.retried, "retried_paths": dict(self.retried_paths)}

    @classmethod
    def from_state(cls, state: Any) -> "SkipCounter":
        if isinstance(state, int):  # checkpoints before per-rank counters: a bare count
            return cls(count=state)
        return cls(int(state.get("count", 0)), dict(state.get("paths", {})),
                   int(state.get("fallbacks", 0)), int(state.get("retried", 0)),
                   dict(state.get("retried_paths", {})))

    def summary(self, max_items: int = 5) -> str:
        """One line: index-time drops, train-time skips and re-drawn clips, each counted
        separately (``"no videos skipped"`` when there is nothing to say)."""
        parts = []
        if self.index_dropped:
            shown = "; ".join(f"{p}: {r}" for p, r in self.index_dropped[:max_items])
            more = (f" (+{len(self.index_dropped) - max_items} more)"
                    if len(self.index_dropped) > max_items else "")
            parts.append(f"{len(self.index_dropped)} files dropped when the index was built: "
                         f"{shown}{more}")
        if self.count:
            shown = "; ".join(f"{p}: {r}" for p, r in list(self.paths.items())[:max_items])
            more = (f" (+{len(self.paths) - max_items} more files)"
                    if len(self.paths) > max_items else "")
            parts.append(f"{self.count} samples skipped over {len(self.paths)} unreadable "
                         f"files during training: {shown}{more}")
        if self.retried:
            parts.append(f"{self.retried} clips re-drawn at another position of "
                         f"{len(self.retried_paths)} partly undecodable files (kept)")
        if self.fallbacks:
            parts.append(f"{self.fallbacks} samples decoded by the fallback decoder")
        if not (self.count or self.index_dropped):
            parts.insert(0, "no videos skipped")
        return "; ".join(parts)


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
    dataset.collate_in_batch = True  # collate_clips is the loader's collate_fn
    extra = {}
    if num_workers > 0:
        extra = {"worker_init_fn": _worker_init, "persistent_workers": persistent_workers,
                 "prefetch_factor": prefetch_factor or 2}
    # Its own generator: creating an iterator must not consume the global torch RNG, or a run
    # resumed mid-epoch would draw different augmentations than the uninterrupted run.
    generator = torch.Generator().manual_seed(seed)
    return ClipLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, drop_last=drop_last, pin_memory=pin_memory,
                      generator=generator, **extra)


class ClipLoader(DataLoader):
    """``DataLoader`` whose iterator re-raises an error from a worker process as the one-line
    vidssl error it was. torch re-raises a worker's exception as "Caught X in DataLoader worker
    process N. Original Traceback ..." (and as a ``RuntimeError`` when X takes more than one
    argument), so a bad config or a dead mount would otherwise reach the user as ten lines of
    somebody else's stack."""

    def __iter__(self):
        return _OneLineErrors(super().__iter__())


class _OneLineErrors:
    def __init__(self, iterator):
        self._iterator = iterator

    def __iter__(self) -> "_OneLineErrors":
        return self

    def __len__(self) -> int:
        return len(self._iterator)

    def __next__(self):
        try:
            return next(self._iterator)
        except (StopIteration, KeyboardInterrupt):
            raise
        except Exception as err:
            plain = worker_error(err)
            if plain is None:
                raise
            shutdown = getattr(self._iterator, "_shutdown_workers", None)
            if shutdown is not None:  # now, not whenever the iterator is collected
                shutdown()
            raise plain from None


_TRACEBACK_LAST = re.compile(r"^(?P<cls>vidssl(?:\.\w+)*\.(?P<name>\w+)): (?P<msg>.+)$")


def worker_error(err: BaseException) -> VidsslError | None:
    """The vidssl error a DataLoader worker raised, rebuilt from torch's re-raise of it, or None
    when ``err`` is not one (a bug's traceback stays as it is)."""
    text = str(err)
    if not text.startswith("Caught ") or "DataLoader worker" not in text or (
            "Original Traceback" not in text):
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    match = _TRACEBACK_LAST.match(lines[-1]) if lines else None
    if match is None:
        return None
    message = match["msg"]
    cls = getattr(errors, match["name"], None)
    if isinstance(cls, type) and issubclass(cls, VidsslError):
        try:
            rebuilt = cls(message)
            if str(rebuilt) == message:
                return rebuilt
        except Exception:  # noqa: BLE001 - needs other arguments (VideoDecodeError): plain
            pass
    return VidsslError(message)


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
