"""The decoder protocol shared by every backend.

A decoder opens one video file and returns frames by **frame index** (0-based, in presentation
order), never by timestamp. Frames come back as a ``uint8`` tensor of shape ``(T, C, H, W)`` with
``C = 3`` (RGB), in the order the indices were given; repeated indices are allowed and are
decoded once. This layout is the one used everywhere in vidssl until the model input, where the
transforms produce ``(B, C, T, H, W)`` float tensors.

Backends register themselves with :func:`register_decoder`; :func:`open_video` picks one by name
and imports it lazily, so a missing optional backend fails with a message naming the extra to
install instead of an ``ImportError`` from deep inside a library.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from vidssl.errors import VideoDecodeError, VidsslError


@dataclass(frozen=True)
class VideoMeta:
    """Stream metadata every backend reports.

    Attributes:
        num_frames: number of decodable frames (indices ``0 .. num_frames - 1`` are valid).
        fps: average frame rate.
        width, height: frame size in pixels.
    """

    num_frames: int
    fps: float
    width: int
    height: int


@runtime_checkable
class VideoDecoder(Protocol):
    """What a backend implements. Use it as a context manager or call :meth:`close`."""

    backend: str
    path: str

    @property
    def metadata(self) -> VideoMeta: ...

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Decode the frames at ``indices`` (any order, repeats allowed) in one pass.

        Returns:
            ``uint8`` tensor ``(len(indices), 3, H, W)``, frame ``k`` is ``indices[k]``.

        Raises:
            VideoDecodeError: the file is corrupt/truncated or an index is out of range.
        """
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "VideoDecoder": ...

    def __exit__(self, *exc: object) -> None: ...


DecoderFactory = Callable[..., VideoDecoder]

# name -> (module path, class name, pip package, extra); imported on first use.
_BACKENDS: dict[str, tuple[str, str, str, str]] = {}


def register_decoder(name: str, module: str, cls: str, package: str, extra: str) -> None:
    """Register a backend by import location so that importing vidssl never imports it."""
    _BACKENDS[name] = (module, cls, package, extra)


register_decoder("torchcodec", "vidssl.data.decoders.torchcodec_backend", "TorchCodecDecoder",
                 "torchcodec", "torchcodec")
register_decoder("pyav", "vidssl.data.decoders.pyav_backend", "PyAVDecoder", "av", "pyav")
register_decoder("decord", "vidssl.data.decoders.decord_backend", "DecordDecoder",
                 "decord", "decord")

DEFAULT_BACKEND = "torchcodec"


def list_decoders() -> list[str]:
    """Names of all registered backends (installed or not)."""
    return sorted(_BACKENDS)


def decoder_class(name: str) -> type:
    """Import and return the backend class for ``name``.

    Raises:
        VidsslError: unknown backend name.
        MissingDependencyError: the backend's package is not installed.
    """
    import importlib

    if name not in _BACKENDS:
        raise VidsslError(f"unknown decoder backend {name!r}; choose one of {list_decoders()}")
    module, cls, _package, _extra = _BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def available_decoders() -> list[str]:
    """Backends whose package imports on this machine."""
    from vidssl.errors import MissingDependencyError

    names = []
    for name in list_decoders():
        try:
            decoder_class(name).check_available()
        except MissingDependencyError:
            continue
        names.append(name)
    return names


def open_video(path: str | os.PathLike, backend: str = DEFAULT_BACKEND, **kwargs) -> VideoDecoder:
    """Open ``path`` with the named backend.

    Raises:
        VideoDecodeError: missing, unreadable, empty, corrupt or non-video file.
        MissingDependencyError: the backend is not installed.
    """
    path = os.fspath(path)
    cls = decoder_class(backend)
    check_readable(path)
    return cls(path, **kwargs)


def probe_video(path: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> VideoMeta:
    """Read a file's metadata (frame count, fps, size) without decoding its frames."""
    with open_video(path, backend) as dec:
        return dec.metadata


def check_readable(path: str) -> None:
    """Fail early, with a clear reason, on paths no decoder could open (one ``stat`` call)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "file not found") from None
    except PermissionError:
        raise VideoDecodeError(path, "permission denied") from None
    except OSError as err:
        raise VideoDecodeError(path, one_line(err)) from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if st.st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


def explain_open_failure(path: str, err: BaseException) -> str:
    """The reason a library could not open ``path``: permissions first, else its message."""
    if not os.access(path, os.R_OK):
        return "permission denied"
    return one_line(err)


def as_index_array(indices: Sequence[int] | np.ndarray, path: str, num_frames: int) -> np.ndarray:
    """Validate frame indices: 1-D integers inside ``[0, num_frames)``."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise VidsslError(f"frame indices for {path} must be a 1-D integer sequence")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= num_frames):
        raise VideoDecodeError(
            path, f"frame index out of range [0, {num_frames}): min {idx.min()}, max {idx.max()}"
        )
    return idx


def unique_with_inverse(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted unique indices and the map back to the requested order.

    The inverse is ``None`` when ``idx`` is already strictly increasing (the common case of one
    clip): nothing to gather afterwards, and no sort on the hot path.
    """
    if idx.size < 2 or bool(np.all(idx[1:] > idx[:-1])):
        return idx, None
    uniq, inverse = np.unique(idx, return_inverse=True)
    return uniq, inverse.reshape(-1)


def gather(frames: torch.Tensor, inverse: np.ndarray | None) -> torch.Tensor:
    """Frames of the unique indices back in the requested order (see ``unique_with_inverse``)."""
    return frames if inverse is None else frames[torch.from_numpy(inverse)]


def one_line(err: BaseException) -> str:
    """A library exception reduced to one line (its last non-empty line)."""
    text = str(err).strip() or type(err).__name__
    # Drop C++ source locations ("SingleStreamDecoder, /path/File.cpp:41, ") libraries prepend.
    text = re.sub(r"(\w+, )?\S+\.(cpp|cc|h):\d+,?\s*", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else text}"
