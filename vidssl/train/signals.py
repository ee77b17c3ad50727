"""SIGTERM / SIGINT during training: finish the step, checkpoint, return (no death mid-step)."""

from __future__ import annotations

import logging
import signal
import threading

import torch

from vidssl.runtime import dist
from vidssl.runtime.device import dist_device

log = logging.getLogger("vidssl")

__all__ = ["StopRequest"]


class StopRequest:
    """SIGTERM / SIGINT handlers that ask the loop to stop after the current step (it then
    checkpoints and returns) instead of dying mid-step. Installed only in the main thread;
    the previous handlers come back on ``close``. A second signal of either kind while
    stopping falls through to the previous handler for that signal (e.g. Ctrl-C twice kills).
    A rank stopped because another rank was signalled reports "a signal on another rank" (the
    CLI exits 130 there; the signalled rank exits 128 + its signal)."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.name: str | None = None
        self._previous: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            num = getattr(signal, name)
            self._previous[num] = signal.signal(num, self._handle)

    def _handle(self, num: int, frame) -> None:
        name = signal.Signals(num).name
        if self.name is not None:  # asked twice: behave as before we were installed
            previous = self._previous.get(num)
            if callable(previous):
                previous(num, frame)
            raise KeyboardInterrupt
        self.name = name
        log.warning("%s received: stopping after this step (checkpoint, then exit)", name)

    def requested(self) -> bool:
        """Whether any rank was asked to stop (all ranks agree, so none waits in a collective)."""
        flag = torch.tensor([1.0 if self.name else 0.0])
        if dist.is_distributed():
            flag = dist.all_reduce_mean(flag.to(dist_device()))
        return bool(flag.item() > 0)

    def close(self) -> None:
        for num, previous in self._previous.items():
            signal.signal(num, previous)
        self._previous.clear()
