"""GPU (NVDEC) decoders: frames are decoded by the GPU's video engine and stay in GPU memory.

Two backends behind the same protocol as the CPU ones, returning ``uint8 (T, 3, H, W)`` CUDA
tensors (no host round trip):

- ``torchcodec_cuda``: torchcodec's ``VideoDecoder(device="cuda")`` (needs a torchcodec build
  with CUDA support and FFmpeg built with NVDEC);
- ``pynvvideocodec``: NVIDIA's ``PyNvVideoCodec`` ``SimpleDecoder`` (``pip install
  PyNvVideoCodec``), planar RGB output, frames handed over with DLPack. Decoders are expensive to
  create, so each process keeps a small bounded pool per GPU and re-targets a pooled decoder at
  the next file (``reconfigure_decoder``) instead of creating one per clip.

Neither can run inside DataLoader worker processes (CUDA does not survive ``fork``): GPU decoding
runs in the training process, on a side stream, in ``vidssl.data.device_loader``. Both import
lazily; without a CUDA device ``check_available`` raises ``BackendUnavailableError``, so CPU
machines list them as unavailable and tests that need them are skipped.

Status: written against the documented APIs (torchcodec 0.17, PyNvVideoCodec 2.x) and tested on
CPU only for their error paths; no GPU was available to the project when they were written.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch

from vidssl.data.decoders.base import VideoMeta, explain_open_failure, gather, one_line, plan_indices
from vidssl.data.decoders.torchcodec_backend import TorchCodecDecoder
from vidssl.data.decoders.torchcodec_backend import _import as _import_torchcodec
from vidssl.errors import BackendUnavailableError, MissingDependencyError, VideoDecodeError


def _require_cuda(backend: str) -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"decoder backend {backend!r} needs a CUDA GPU (torch.cuda.is_available() is False); "
            "use a CPU backend (torchcodec, pyav, decord) or decoder: auto")


def _cuda_device(gpu_id: int | None) -> int:
    return torch.cuda.current_device() if gpu_id is None else int(gpu_id)


class TorchCodecCudaDecoder:
    """torchcodec on NVDEC: the CPU backend's logic with ``device="cuda:<gpu_id>"``."""

    backend = "torchcodec_cuda"

    @staticmethod
    def check_available() -> None:
        _import_torchcodec()
        _require_cuda("torchcodec_cuda")

    def __init__(self, path: str, gpu_id: int | None = None, seek_mode: str = "exact"):
        self.check_available()
        self.path = path
        self._dec = TorchCodecDecoder(path, seek_mode=seek_mode,
                                      device=f"cuda:{_cuda_device(gpu_id)}")

    @property
    def metadata(self) -> VideoMeta:
        return self._dec.metadata

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        return self._dec.get_frames(indices)

    def close(self) -> None:
        self._dec.close()

    def __enter__(self) -> "TorchCodecCudaDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_nvc():
    try:
        import PyNvVideoCodec as nvc
    except ImportError:
        raise MissingDependencyError("PyNvVideoCodec", "nvdec", "the PyNvVideoCodec decoder") from None
    return nvc


class _DecoderPool:
    """At most ``capacity`` idle ``SimpleDecoder`` objects per GPU, reused across files."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._idle: dict[int, OrderedDict[int, object]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self, gpu_id: int):
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not reuse the parent's objects
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get(gpu_id)
            return idle.popitem(last=False)[1] if idle else None

    def give(self, gpu_id: int, decoder: object) -> None:
        with self._lock:
            idle = self._idle.setdefault(gpu_id, OrderedDict())
            if len(idle) < self.capacity:
                idle[id(decoder)] = decoder


_POOL = _DecoderPool()


class PyNvVideoCodecDecoder:
    """Decode with PyNvVideoCodec's ``SimpleDecoder`` (planar RGB, frames kept on the GPU)."""

    backend = "pynvvideocodec"

    @staticmethod
    def check_available() -> None:
        _import_nvc()
        _require_cuda("pynvvideocodec")

    def __init__(self, path: str, gpu_id: int | None = None):
        self.check_available()
        nvc = _import_nvc()
        self.path = path
        self._gpu = _cuda_device(gpu_id)
        self._dec = None
        dec = _POOL.take(self._gpu)
        if dec is not None and hasattr(dec, "reconfigure_decoder"):
            try:  # a pooled session re-pointed at this file: much cheaper than a new one
                dec.reconfigure_decoder(path)
            except Exception:  # noqa: BLE001 - e.g. another codec: a fresh session decides
                dec = None
        else:
            dec = None
        try:
            if dec is None:
                dec = nvc.SimpleDecoder(path, gpu_id=self._gpu, use_device_memory=True,
                                        output_color_type=nvc.OutputColorType.RGBP)
            self._dec = dec
            num_frames = len(dec)
            size = _stream_size(dec)
            if size is None and num_frames:  # no size in the metadata: decode frame 0 to learn it
                first = self._to_tensor(dec.get_batch_frames_by_index([0])[0])
                size = int(first.shape[-1]), int(first.shape[-2])
        except Exception as err:  # noqa: BLE001 - any NVDEC / demuxer error: one clear line
            self._dec = None
            raise VideoDecodeError(path, explain_open_failure(path, err)) from None
        if not num_frames:
            raise VideoDecodeError(path, "no decodable video frames")
        fps = _stream_fps(dec)
        self._meta = VideoMeta(int(num_frames), fps, size[0], size[1])

    @staticmethod
    def _to_tensor(frame) -> torch.Tensor:
        t = torch.from_dlpack(frame)
        if t.dim() == 3 and t.shape[-1] == 3 and t.shape[0] != 3:  # interleaved RGB: to CHW
            t = t.permute(2, 0, 1)
        return t

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        device = torch.device("cuda", self._gpu)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8,
                               device=device)
        if self._dec is None:
            raise VideoDecodeError(self.path, "decoder is closed")
        try:
            frames = self._dec.get_batch_frames_by_index(uniq)
            if len(frames) != len(uniq):
                raise VideoDecodeError(self.path, f"NVDEC returned {len(frames)} of {len(uniq)} "
                                                  "frames (truncated or corrupt stream)")
            batch = torch.stack([self._to_tensor(f) for f in frames])
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise VideoDecodeError(self.path, one_line(err)) from None
        if batch.dtype != torch.uint8 or batch.shape[1] != 3:
            raise VideoDecodeError(self.path, f"unexpected NVDEC output {tuple(batch.shape)} "
                                              f"{batch.dtype}")
        return gather(batch, inverse)

    def close(self) -> None:
        if self._dec is not None:
            _POOL.give(self._gpu, self._dec)
            self._dec = None

    def __enter__(self) -> "PyNvVideoCodecDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream_size(dec) -> tuple[int, int] | None:
    """``(width, height)`` from ``get_stream_metadata()``, or ``None`` where it has none."""
    try:
        meta = dec.get_stream_metadata()
        width, height = int(getattr(meta, "width", 0) or 0), int(getattr(meta, "height", 0) or 0)
    except Exception:  # noqa: BLE001 - optional: the caller decodes frame 0 instead
        return None
    return (width, height) if width > 0 and height > 0 else None


def _stream_fps(dec) -> float:
    """Average frame rate from ``get_stream_metadata()`` (field names vary across versions)."""
    try:
        meta = dec.get_stream_metadata()
    except Exception:  # noqa: BLE001 - metadata is optional for decoding by index
        return 0.0
    for name in ("average_fps", "avg_frame_rate", "fps", "frame_rate"):
        value = getattr(meta, name, None)
        if value:
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
    return 0.0
