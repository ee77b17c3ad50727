"""Pieces of the quick-start job (``vidssl demo``) that are not a CLI concern."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader, set_loader_epoch
from vidssl.data.index.core import VideoIndex


@dataclass
class LoaderStats:
    """What one pass of the loader measured."""

    clips: int
    batches: int
    seconds: float
    batch_shape: tuple[int, ...]
    num_workers: int
    skipped: SkipCounter

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")

    def describe(self) -> str:
        return (f"loader: {self.batches} batches of {tuple(self.batch_shape)} uint8 "
                f"(B, T, C, H, W), {self.clips} clips in {self.seconds:.2f} s = "
                f"{self.clips_per_s:.1f} clips/s with {self.num_workers} workers\n"
                f"skipped: {self.skipped.summary()}")


def loader_throughput(index: VideoIndex, *, batch_size: int = 8, num_workers: int = 2,
                      epochs: int = 1, clip_len: int = 16, stride: int = 2,
                      decoder: str = "torchcodec", seed: int = 0) -> LoaderStats:
    """Iterate a random-clip loader over ``index`` for ``epochs`` and time it."""
    from vidssl.data.samplers import RandomClipSampler

    dataset = ClipDataset(index, RandomClipSampler(num_frames=clip_len, stride=stride),
                          decoder=decoder, seed=seed)
    loader = build_loader(dataset, batch_size, num_workers=num_workers, seed=seed)
    skipped = SkipCounter()
    clips = batches = 0
    shape: tuple[int, ...] = ()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        set_loader_epoch(loader, epoch)
        for batch in loader:
            view = batch["views"][0]
            assert view.dtype == torch.uint8
            shape = tuple(view.shape)
            clips += view.shape[0]
            batches += 1
            skipped.update(batch)
    return LoaderStats(clips, batches, time.perf_counter() - t0, shape, num_workers, skipped)
