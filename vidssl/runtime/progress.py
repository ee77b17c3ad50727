"""The one progress bar (rich): training steps, feature extraction, finetuning, tracking, the
synthetic dataset, optical flow, attribute generation."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar:
    """``description  [bar]  done/total  elapsed  remaining  [stats]``; a no-op when disabled.

    ``update(completed, stats)`` sets the position (and the free-text stats column when the
    bar was made with ``stats=True``); ``advance(n)`` moves it; ``close()`` stops drawing.
    """

    def __init__(self, total: int, description: str, *, completed: int = 0, enabled: bool = True,
                 stats: bool = False, transient: bool = False, stderr: bool = False):
        self._bar = None
        if not enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]
        if stats:
            columns.append(TextColumn("{task.fields[stats]}"))
        extra = {}
        if stderr:
            from rich.console import Console

            extra["console"] = Console(stderr=True)
        self._bar = Progress(*columns, transient=transient, **extra)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, completed=completed, stats="")

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def update(self, completed: int, stats: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, stats=stats)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str, *, transient: bool = False,
                 stderr: bool = False) -> Iterator[Callable[[int], None]]:
    """A :class:`ProgressBar` for the block (a no-op when disabled); yields ``advance(n)``."""
    bar = ProgressBar(total, description, enabled=enabled, transient=transient, stderr=stderr)
    try:
        yield bar.advance
    finally:
        bar.close()
