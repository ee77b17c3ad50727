"""torchcodec backend (the default): FFmpeg through PyTorch's own decoding library."""

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
        from torchcodec.decoders import VideoDecoder
    except ImportError as err:  # torchcodec missing, or FFmpeg's shared libraries missing
        if "torchcodec" in str(err) and "No module named" in str(err):
            raise MissingDependencyError("torchcodec", "torchcodec", "the torchcodec decoder") from None
        raise MissingDependencyError(
            "torchcodec", "torchcodec",
            "the torchcodec decoder (FFmpeg shared libraries not found: apt-get install -y ffmpeg)",
        ) from None
    except RuntimeError as err:  # torchcodec raises RuntimeError when libavcodec cannot load
        raise MissingDependencyError(
            "torchcodec", "torchcodec",
            f"the torchcodec decoder (FFmpeg libraries failed to load: {one_line(err)}; "
            "apt-get install -y ffmpeg)",
        ) from None
    return VideoDecoder


class TorchCodecDecoder:
    """Decode with ``torchcodec.decoders.VideoDecoder``.

    Args:
        path: video file.
        seek_mode: ``"exact"`` (default) scans the container once so frame counts and indices are
            exact; ``"approximate"`` trusts the header (faster to open, wrong on some files).
        num_threads: FFmpeg decoding threads. 1 is right inside DataLoader workers.
        device: ``"cpu"``; GPU decoding lives in a separate backend.
    """

    backend = "torchcodec"

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, seek_mode: str = "exact", num_threads: int = 1,
                 device: str = "cpu"):
        self.path = path
        decoder_cls = _import()
        try:
            self._dec = decoder_cls(path, seek_mode=seek_mode, num_ffmpeg_threads=num_threads,
                                    dimension_order="NCHW", device=device)
            md = self._dec.metadata
            num_frames = int(md.num_frames or 0)
            fps = float(md.average_fps or 0.0)
            self._meta = VideoMeta(num_frames, fps, int(md.width or 0), int(md.height or 0))
        except Exception as err:  # noqa: BLE001 - any library error becomes one clear line
            raise VideoDecodeError(path, explain_open_failure(path, err)) from None
        if self._meta.num_frames <= 0:
            raise VideoDecodeError(path, "no decodable video frames")

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        try:
            frames = self._dec.get_frames_at(uniq).data
        except Exception as err:  # noqa: BLE001
            raise VideoDecodeError(self.path, one_line(err)) from None
        return gather(frames, inverse)

    def close(self) -> None:
        self._dec = None

    def __enter__(self) -> "TorchCodecDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
