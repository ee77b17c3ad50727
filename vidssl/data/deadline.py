"""A per-file time limit on decoding: a file that hangs the decoder is skipped, not waited on.

Python cannot interrupt a C call, so a deadline cannot be a signal: a decoder blocked inside
FFmpeg (a file on a stalled network mount, a pathological stream) would never see it. Instead
the decode runs on a helper thread and the caller waits for it with a timeout. All three CPU
backends release the GIL while inside FFmpeg (checked: a thread blocked opening a FIFO does not
stop the main thread), so the caller regains control on time. A thread that overruns is
abandoned: it cannot be killed, so it keeps whatever it holds until its call returns, and the
next file gets a fresh thread. After ``max_abandoned`` overruns in one process the storage or
backend is stuck, and continuing would only pile up threads: that raises.

The helper thread is created lazily in the process that decodes (a thread started before a
DataLoader forks its workers does not exist in them). :meth:`DecodeDeadline.run_batch` runs a
whole batch of samples in one hand-off (two thread switches per batch instead of per sample:
~0.13 ms per sample on a loaded 2-core machine, 9% of a 64x64 clip); each file decode inside it
reports itself with :func:`beat`, and the file whose decode overruns is the one abandoned.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import torch

from vidssl.errors import DecoderStuckError, VideoDecodeError, VidsslError

T = TypeVar("T")

DEFAULT_DECODE_TIMEOUT_S = 60.0
TIMEOUT_REASON = "decoding did not finish within"


_beats = threading.local()  # the heartbeat of the batch the current helper thread runs


@dataclass
class _Batch:
    """A batch job: its calls, what they returned, and the heartbeat ``(path, tag, started)``
    of the file being decoded (the main thread reads it to see which file overran)."""

    calls: Sequence[Callable[[], Any]]
    results: list = field(default_factory=list)
    beat: tuple = (None, None, 0.0)
    cancelled: bool = False
    before: list = field(default_factory=list)  # results of the earlier, abandoned jobs
    then: Callable[[list], Any] | None = None

    def run(self) -> tuple[list, Any]:
        _beats.batch = self
        try:
            for call in self.calls:
                if self.cancelled:  # abandoned while a call hung: do not go on in the background
                    return self.results, None
                self.beat = (None, None, time.monotonic())
                self.results.append(call())
            self.beat = (None, None, time.monotonic())
            after = None if self.then is None else self.then(self.before + self.results)
        finally:
            _beats.batch = None
        return self.results, after


def beat(path: str, tag: Any = None) -> None:
    """Called by the code a :meth:`DecodeDeadline.run_batch` call runs, when it starts decoding
    ``path``: the deadline now counts for that file (``tag`` comes back to ``on_overrun``)."""
    batch = getattr(_beats, "batch", None)
    if batch is not None:
        batch.beat = (path, tag, time.monotonic())


class _Worker:
    """One daemon thread running submitted calls in order (daemon: a thread stuck in a C call
    must not keep the process alive at exit, which a ``ThreadPoolExecutor`` thread would)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="vidssl-decode", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, args, kwargs, box, done, stream = job
            try:
                if stream is None:
                    box.append((True, fn(*args, **kwargs)))
                else:  # GPU decoding: on the caller's CUDA stream, as if it ran inline
                    with torch.cuda.stream(stream):
                        box.append((True, fn(*args, **kwargs)))
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                box.append((False, err))
            done.set()

    def submit(self, fn: Callable, args: tuple, kwargs: dict) -> tuple[list, threading.Event]:
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        stream = torch.cuda.current_stream() if torch.cuda.is_initialized() else None
        self.jobs.put((fn, args, kwargs, box, done, stream))
        return box, done

    def stop(self) -> None:
        self.jobs.put(None)  # a stuck thread sees it when (if) its call returns


class DecodeDeadline:
    """Runs decode calls on a helper thread and gives up on one after ``timeout_s`` seconds.

    Args:
        timeout_s: seconds one call may take; ``None`` or ``0`` runs calls inline, no limit.
        max_abandoned: overrunning calls tolerated per process before raising ``VidsslError``.
    """

    def __init__(self, timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S, max_abandoned: int = 8):
        if timeout_s is not None and timeout_s < 0:
            raise VidsslError(f"decode timeout must be >= 0 seconds, not {timeout_s}")
        self.timeout_s = timeout_s or None
        self.max_abandoned = int(max_abandoned)
        self.abandoned = 0
        self._worker: _Worker | None = None
        self._pid = -1

    def __getstate__(self) -> dict:  # threads do not pickle (spawned DataLoader workers)
        state = self.__dict__.copy()
        state.update(_worker=None, _pid=-1)
        return state

    def _current(self) -> _Worker:
        if self._worker is None or self._pid != os.getpid():  # forked: the thread is not here
            self._worker, self._pid = _Worker(), os.getpid()
        return self._worker

    def run(self, path: str, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)``, or ``VideoDecodeError(path, ...)`` if it overruns."""
        if self.timeout_s is None:
            return fn(*args, **kwargs)
        box, done = self._current().submit(fn, args, kwargs)
        if done.wait(self.timeout_s):
            ok, value = box[0]
            if ok:
                return value
            raise value
        raise self._abandon(path)

    def run_batch(self, calls: Sequence[Callable[[], T]],
                  on_overrun: Callable[[int, VideoDecodeError, Any], None],
                  then: Callable[[list], Any] | None = None) -> tuple[list[T], Any]:
        """``([call() for call in calls], then(those results))``, in one hand-off to the helper
        thread (``then`` also runs there; ``None`` for no second value). A file whose decode
        (from its :func:`beat` on) runs past the deadline is abandoned with its thread:
        ``on_overrun(k, error, tag)`` is told (``k``: the call that was running, ``error``: the
        ``VideoDecodeError`` naming the file), and calls ``k, k+1, ...`` run again on a fresh
        thread. A call's own exception is re-raised."""
        if self.timeout_s is None:
            results = [call() for call in calls]
            return results, (None if then is None else then(results))
        results: list[T] = []
        after = None
        while len(results) < len(calls) or (then is not None and not calls):
            job = _Batch(calls[len(results):], beat=(None, None, time.monotonic()),
                         before=list(results), then=then)
            box, done = self._current().submit(job.run, (), {})
            while not done.wait(max(0.0, job.beat[2] + self.timeout_s - time.monotonic())):
                if time.monotonic() - job.beat[2] >= self.timeout_s:
                    break  # the current file overran (a new beat would have moved the mark)
            if done.is_set():
                ok, value = box[0]
                if not ok:
                    raise value
                results += value[0]
                after = value[1]
                break
            job.cancelled = True
            results += job.results[:len(job.results)]
            path, tag, _ = job.beat
            err = self._abandon(path or "<unknown file>")
            on_overrun(len(results), err, tag)
        return results, after

    def _abandon(self, path: str) -> VideoDecodeError:
        self._worker.stop()  # abandoned: the next call gets a fresh thread
        self._worker = None
        self.abandoned += 1
        if self.abandoned > self.max_abandoned:
            raise DecoderStuckError(
                f"{self.abandoned} decodes overran the {self.timeout_s:g} s deadline in this "
                f"process (last: {path}); the storage or the decoder backend appears stuck")
        return VideoDecodeError(path, f"{TIMEOUT_REASON} {self.timeout_s:g} s "
                                      "(hung or pathologically slow file); abandoned")

    def close(self) -> None:
        if self._worker is not None and self._pid == os.getpid():
            self._worker.stop()
        self._worker = None
