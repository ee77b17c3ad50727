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

import dataclasses
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from vidssl.errors import VideoDecodeError, VidsslError
from vidssl.registry import Registry


class FrameDecodeError(VideoDecodeError):
    """The file opened, but some of the requested frames could not be decoded (a corrupt or
    truncated packet, a frame past the decodable end). Other positions of the same file may
    still read, so a loader retries another clip of it before giving the file up."""


@dataclass(frozen=True)
class VideoMeta:
    """Stream metadata every backend reports.

    Attributes:
        num_frames: the frames the container lists for the best video stream (indices
            ``0 .. num_frames - 1``); equal to the frames a sequential decode yields unless a
            packet does not decode (docs/decoding.md, "The contract").
        fps: average frame rate.
        width, height: frame size in pixels, as displayed (rotation applied).
        seek_token: non-zero when :func:`probe_video` verified, by decoding the whole file,
            that this backend may seek in a file it otherwise reads by counting from the start
            (MPEG-4 part 2 AVI with B-frames); it identifies the file's size and modification
            time, so a changed file is not trusted (pass it as ``open_video(...,
            verified_seek=token)``).
    """

    num_frames: int
    fps: float
    width: int
    height: int
    seek_token: int = 0


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

#: Backends by name, registered by import location (``lazy``) so that importing vidssl never
#: imports a decoding library; info: ``package`` / ``extra`` (the install hint) and ``device``
#: (where its frames come out: ``"cpu"`` or ``"cuda"``).
DECODERS: Registry[type] = Registry("decoder backend")


def register_decoder(name: str, module: str, cls: str, package: str, extra: str,
                     device: str = "cpu") -> None:
    """Register a backend by import location so that importing vidssl never imports it.
    ``device``: where its frames come out (``"cuda"`` backends are never used inside DataLoader
    worker processes; see ``vidssl.data.device_loader``)."""
    DECODERS.register(name, lazy=f"{module}:{cls}", package=package, extra=extra, device=device)


register_decoder("torchcodec", "vidssl.data.decoders.torchcodec_backend", "TorchCodecDecoder",
                 "torchcodec", "torchcodec")
register_decoder("pyav", "vidssl.data.decoders.pyav_backend", "PyAVDecoder", "av", "pyav")
register_decoder("decord", "vidssl.data.decoders.decord_backend", "DecordDecoder",
                 "decord", "decord")
register_decoder("torchcodec_cuda", "vidssl.data.decoders.nvdec", "TorchCodecCudaDecoder",
                 "torchcodec", "torchcodec", device="cuda")
register_decoder("pynvvideocodec", "vidssl.data.decoders.nvdec", "PyNvVideoCodecDecoder",
                 "PyNvVideoCodec", "nvdec", device="cuda")

DEFAULT_BACKEND = "torchcodec"

# Frames larger than this are refused at open, before any frame is decoded: 8192 x 4320 (DCI 8K)
# is the largest size a real camera or dataset delivers; a header claiming more is almost always
# a crafted or corrupt file, and decoding 16 such frames would take gigabytes.
DEFAULT_MAX_FRAME_PIXELS = 8192 * 4320


def list_decoders(device: str | None = None) -> list[str]:
    """Names of the registered backends (installed or not); ``device``: only those whose frames
    come out there (``"cpu"`` or ``"cuda"``)."""
    return DECODERS.names() if device is None else DECODERS.names(device=device)


def decoder_device(name: str) -> str:
    """``"cpu"`` or ``"cuda"``: where backend ``name`` returns frames."""
    return DECODERS.info(name)["device"]


def decoder_class(name: str) -> type:
    """Import and return the backend class for ``name``.

    Raises:
        ConfigError: unknown backend name.
        MissingDependencyError: the backend's package is not installed.
    """
    return DECODERS[name]


def available_decoders(device: str = "cpu") -> list[str]:
    """Backends usable on this machine whose frames come out on ``device`` (``"cpu"``,
    ``"cuda"``, or ``"any"``): the package imports and, for GPU backends, a CUDA device exists."""
    from vidssl.errors import BackendUnavailableError, MissingDependencyError

    names = []
    for name in list_decoders(None if device == "any" else device):
        try:
            decoder_class(name).check_available()
        except (MissingDependencyError, BackendUnavailableError):
            continue
        names.append(name)
    return names


def open_video(path: str | os.PathLike, backend: str = DEFAULT_BACKEND,
               max_frame_pixels: int | None = DEFAULT_MAX_FRAME_PIXELS, **kwargs) -> VideoDecoder:
    """Open ``path`` with the named backend.

    Args:
        max_frame_pixels: refuse files whose frames have more pixels than this (``None``: no
            limit); checked on the stream header, before anything is decoded.
        kwargs: passed to the backend (e.g. ``num_threads``).

    Raises:
        VideoDecodeError: missing, unreadable, empty, corrupt, oversized or non-video file.
        MissingDependencyError: the backend is not installed.
    """
    path = os.fspath(path)
    cls = decoder_class(backend)
    check_readable(path)
    decoder = cls(path, **kwargs)
    if max_frame_pixels is not None:
        meta = decoder.metadata
        if meta.width * meta.height > max_frame_pixels:
            decoder.close()
            raise VideoDecodeError(
                path, f"frame size {meta.width}x{meta.height} exceeds the limit of "
                f"{max_frame_pixels / 1e6:.1f} Mpixel per frame (raise max_frame_pixels to read it)")
    return decoder


def probe_video(path: str | os.PathLike, backend: str = DEFAULT_BACKEND) -> VideoMeta:
    """Read a file's metadata (frame count, fps, size). Nothing is decoded, except for files the
    backend reads by counting frames from the start: those are decoded once, whole, to verify
    that seeking in them is exact (``VideoMeta.seek_token``; the index caches the answer)."""
    with open_video(path, backend) as dec:
        meta = dec.metadata
        verify = getattr(dec, "verify_seeking", None)
        token = verify() if verify is not None else 0
    return dataclasses.replace(meta, seek_token=token) if token else meta


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
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block the decoder forever
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "device or socket"
        raise VideoDecodeError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


NO_VIDEO_STREAM = "no video stream (audio-only or not a video container)"
UNSUPPORTED_CODEC = "unsupported video codec (FFmpeg has no decoder for this file's video stream)"


def explain_open_failure(path: str, err: BaseException) -> str:
    """The reason a library could not open ``path``: permissions first, then what the container
    says (no video stream: audio-only files; a video stream no decoder handles: unknown codec),
    where torchcodec and decord otherwise answer with an issue-tracker URL or an internal
    check; else the library's own message."""
    if not os.access(path, os.R_OK):
        return "permission denied"
    return _container_problem(path) or one_line(err)


def _container_problem(path: str) -> str | None:
    """What PyAV (if installed) finds wrong with a container it can open, or None."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(path) as container:
            if len(container.streams) > 0 and not container.streams.video:
                return NO_VIDEO_STREAM
            if container.streams.video and container.streams.video[0].codec_context is None:
                return UNSUPPORTED_CODEC
    except Exception:  # noqa: BLE001 - unreadable as a container too: keep the library's reason
        return None
    return None


def plan_indices(indices: Sequence[int] | np.ndarray, path: str,
                 num_frames: int) -> tuple[list[int], list[int] | None]:
    """Validate frame indices and plan one decode pass.

    Returns:
        ``(unique, inverse)``: the sorted unique indices to decode, and the position in
        ``unique`` of each requested index, or ``None`` when the request already is strictly
        increasing (one clip: nothing to sort or gather).

    Plain Python on a list: requests are clip-sized (tens to hundreds of indices), and right
    after a decode numpy's many small calls measured ~100 us per clip here (cold caches),
    about 8% of decoding a 16-frame 64x64 clip.
    """
    if isinstance(indices, np.ndarray):
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise VidsslError(f"frame indices for {path} must be a 1-D integer sequence")
        wanted = indices.tolist()
    else:
        wanted = list(indices)
        if any(isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))
               for i in wanted):
            raise VidsslError(f"frame indices for {path} must be a 1-D integer sequence")
        wanted = [int(i) for i in wanted]
    if not wanted:
        return [], None
    lo, hi = min(wanted), max(wanted)
    if lo < 0 or hi >= num_frames:
        raise VideoDecodeError(
            path, f"frame index out of range [0, {num_frames}): min {lo}, max {hi}")
    if all(a < b for a, b in zip(wanted, wanted[1:])):
        return wanted, None
    unique = sorted(set(wanted))
    position = {frame: k for k, frame in enumerate(unique)}
    return unique, [position[frame] for frame in wanted]


def gather(frames: torch.Tensor, inverse: list[int] | None) -> torch.Tensor:
    """Frames of the unique indices back in the requested order (see ``plan_indices``)."""
    return frames if inverse is None else frames[torch.tensor(inverse, dtype=torch.int64)]


def one_line(err: BaseException) -> str:
    """A library exception reduced to one line (its last non-empty line)."""
    text = str(err).strip() or type(err).__name__
    # Drop C++ source locations ("SingleStreamDecoder, /path/File.cpp:41, ") libraries prepend.
    text = re.sub(r"(\w+, )?\S+\.(cpp|cc|h):\d+,?\s*", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else text}"
