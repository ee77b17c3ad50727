"""``DeviceLoader``: batches decoded and assembled on the training device, one step ahead.

The DataLoader path (``build_loader``) decodes in worker processes on the CPU and ships uint8
batches to the device. With a GPU decoder (``torchcodec_cuda``, ``pynvvideocodec``) that cannot
work: CUDA does not survive ``fork``, and the point is to keep frames on the GPU. Here:

- sampling stays on the CPU (the same ``ClipDataset`` draws, seeded per ``(seed, epoch, video)``,
  the same per-rank order from ``epoch_sampler``, so a batch is the one the DataLoader path would
  give for the same seed);
- a background thread of the training process decodes the next batch (GPU decoders write GPU
  memory), collates it and moves what is left to the device, on a **side CUDA stream**, while
  the current step runs; the consumer's stream waits on an event, and every tensor is marked as
  used by the consumer stream (``record_stream``) so the caching allocator does not hand its
  memory to the producer too early;
- under DDP each rank runs its own loader on its own GPU (``DistributedSampler`` splits videos).

On a CPU device it runs the same code without streams (that is how it is tested here).
Per-file failures are skipped and counted exactly like the DataLoader path (``skipped``).
"""

from __future__ import annotations

import queue
import threading
from contextlib import nullcontext
from typing import Any, Iterator

import torch

from vidssl.data.dataset import ClipDataset, batch_to_device, collate_clips, epoch_sampler

_DONE = object()


class DeviceLoader:
    """Iterable of batches already on ``device`` (see the module docstring).

    Args:
        dataset: the clips (any decoder; GPU decoders are only allowed here).
        batch_size: per-process batch.
        device: where batches are assembled.
        prefetch: batches prepared ahead of the consumer (1 = the next step's).
        shuffle, drop_last, seed, distributed: as ``build_loader``.

    Compatible with ``set_loader_epoch`` (``sampler``, ``dataset``, ``batch_size``).
    """

    def __init__(self, dataset: ClipDataset, batch_size: int, device: torch.device | str, *,
                 prefetch: int = 1, shuffle: bool = True, drop_last: bool = True, seed: int = 0,
                 distributed: bool | None = None):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.prefetch = max(1, int(prefetch))
        self.drop_last = drop_last
        self.sampler = epoch_sampler(dataset, batch_size, shuffle=shuffle, drop_last=drop_last,
                                     seed=seed, distributed=distributed)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _chunks(self) -> list[list[int]]:
        order = list(iter(self.sampler))
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and chunks and len(chunks[-1]) < self.batch_size:
            chunks.pop()
        return chunks

    def _produce(self, chunks: list[list[int]], out: queue.Queue, stop: threading.Event) -> None:
        cuda = self.device.type == "cuda"
        stream = torch.cuda.Stream(self.device) if cuda else None
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                with torch.cuda.stream(stream) if cuda else nullcontext():
                    batch = batch_to_device(collate_clips([self.dataset[i] for i in chunk]),
                                            self.device)
                    ready = None
                    if cuda:
                        ready = torch.cuda.Event()
                        ready.record(stream)
                if not _put(out, (batch, ready), stop):
                    return
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer's thread
            _put(out, (err, None), stop)
            return
        _put(out, (_DONE, None), stop)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        chunks = self._chunks()
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(chunks, out, stop),
                                    name="vidssl-device-loader", daemon=True)
        producer.start()
        try:
            while True:
                item, ready = out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                if ready is not None:
                    current = torch.cuda.current_stream(self.device)
                    current.wait_event(ready)
                    for t in _tensors(item):
                        if t.is_cuda:
                            t.record_stream(current)
                yield item
        finally:
            stop.set()
            producer.join(timeout=30)


def _put(out: queue.Queue, item: tuple, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone (``stop``): a producer never blocks forever
    on a full queue nobody reads. Returns whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _tensors(batch: dict[str, Any]):
    yield from batch["views"]
    yield from batch["targets"].values()
    for key in ("label", "index", "group"):
        if key in batch:
            yield batch[key]

