"""decord backend: ``decord.VideoReader.get_batch`` (bundles its own FFmpeg)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vidssl.data.decoders.base import (
    VideoMeta,
    explain_open_failure,
    gather,
    one_line,
    plan_indices,
)
from vidssl.errors import MissingDependencyError, VideoDecodeError


def _import():
    try:
        import decord
    except ImportError:
        raise MissingDependencyError("decord", "decord", "the decord decoder") from None
    return decord


class DecordDecoder:
    """Decode with decord. ``num_threads`` is decord's decoding thread count (1 in workers)."""

    backend = "decord"

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, num_threads: int = 1):
        self.path = path
        decord = _import()
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
            height, width = self._vr[0].shape[:2] if len(self._vr) else (0, 0)
            self._meta = VideoMeta(len(self._vr), float(self._vr.get_avg_fps()), int(width),
                                   int(height))
        except Exception as err:  # noqa: BLE001 - DECORDError carries a C++ backtrace
            reason = explain_open_failure(path, err).split(" Stack trace")[0]
            raise VideoDecodeError(path, reason) from None
        if self._meta.num_frames <= 0:
            raise VideoDecodeError(path, "no decodable video frames")
        self._vr.seek(0)

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        try:
            batch = self._vr.get_batch(uniq).asnumpy()
        except Exception as err:  # noqa: BLE001
            raise VideoDecodeError(self.path, one_line(err).split(" Stack trace")[0]) from None
        frames = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        return gather(frames, inverse).contiguous()

    def close(self) -> None:
        self._vr = None

    def __enter__(self) -> "DecordDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
