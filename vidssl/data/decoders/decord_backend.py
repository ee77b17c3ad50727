"""decord backend: ``decord.VideoReader`` (bundles its own FFmpeg).

decord 0.6's random access is exact only on streams whose decoder does not reorder frames:
on B-frame streams its ``get_batch``, ``seek`` and ``skip_frames`` return frames of other
positions (measured: XVID/H.264 in AVI, HEVC in MP4/MKV, open-GOP H.264; see
``docs/decoding.md``), while reading forward with ``next()`` from the first frame is exact. So:

* streams that do not reorder (:func:`~vidssl.data.decoders.numbering.reorders` is false):
  ``get_batch`` on the sorted unique indices;
* streams that reorder: ``next()`` from frame 0 up to the last wanted frame (every frame is
  converted to RGB on the way: decord has no decode-only step that counts right).

What decord cannot do exactly is refused at open with one line, worded like the other
backends' refusals: sources deeper than 8 bits (its RGB conversion is off by up to ~200 grey
levels), a codec its bundled FFmpeg lacks (AV1: "cannot find video stream with wanted index:
-1" from decord itself), and files whose best video stream is not the one decord reads (it
takes no stream index). decord stops at a packet it cannot decode; frames past it are refused
(``FrameDecodeError``), not replaced.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

from vidssl.data.decoders.base import (
    FrameDecodeError,
    VideoMeta,
    explain_open_failure,
    gather,
    one_line,
    plan_indices,
)
from vidssl.data.decoders.numbering import reorders
from vidssl.errors import MissingDependencyError, VideoDecodeError

HIGH_BIT_DEPTH_MARKERS = ("p10", "p12", "p14", "p16")


def _import():
    try:
        import decord
    except ImportError:
        raise MissingDependencyError("decord", "decord", "the decord decoder") from None
    return decord


def decord_reason(message: str) -> str:
    """decord's error text without its C++ check, timestamps and stack trace."""
    message = message.split(" Stack trace")[0]
    if "avcodec_send_packet" in message:
        return ("a packet decord's decoder rejects (corrupt data); decord does not resume after "
                "one: use the torchcodec or pyav backend")
    return re.sub(r"\[\d\d:\d\d:\d\d\] (\S+:\d+: )?(: )?", "", message).strip()


def _stream_facts(path: str):
    """``(best video stream header, number of video streams)`` from torchcodec, or None."""
    try:
        from torchcodec.decoders import get_container_metadata

        meta = get_container_metadata(path)
    except Exception:  # noqa: BLE001 - decord's own open reports what is wrong
        return None, 0
    videos = [s for s in meta.streams if getattr(s, "media_type", None) == "video"]
    best = meta.best_video_stream_index
    return (meta.streams[best] if best is not None else None), len(videos)


class DecordDecoder:
    """Decode with decord. ``num_threads`` is decord's decoding thread count (1 in workers)."""

    backend = "decord"

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, num_threads: int = 1):
        self.path = path
        decord = _import()
        self._decord = decord
        best, num_video = _stream_facts(path)
        if best is not None and any(m in (best.pixel_format or "")
                                    for m in HIGH_BIT_DEPTH_MARKERS):
            raise VideoDecodeError(
                path, f"unsupported pixel format {best.pixel_format} for decord (its RGB "
                "conversion of sources deeper than 8 bits is off by up to ~200 grey levels); "
                "use the torchcodec or pyav backend")
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
            if best is not None and best.width and best.height:  # the header: nothing decoded
                # (torchcodec reports the displayed size, rotation applied, as decord decodes)
                width, height = int(best.width), int(best.height)
            else:  # no header to read: decode the first frame to learn the size
                height, width = self._vr[0].shape[:2] if len(self._vr) else (0, 0)
            self._meta = VideoMeta(len(self._vr), float(self._vr.get_avg_fps()), int(width),
                                   int(height))
        except Exception as err:  # noqa: BLE001 - DECORDError carries a C++ backtrace
            if best is not None and "wanted index" in str(err):
                reason = (f"unsupported video codec (decord's bundled FFmpeg has no decoder for "
                          f"{best.codec})")
            else:
                reason = decord_reason(explain_open_failure(path, err))
            raise VideoDecodeError(path, reason) from None
        if self._meta.num_frames <= 0:
            raise VideoDecodeError(path, "no decodable video frames")
        if num_video > 1 and best is not None:
            size = (self._meta.width, self._meta.height)
            try:
                shape = self._vr[0].shape
            except Exception:  # noqa: BLE001 - unreadable first frame: frames will say why
                shape = (size[1], size[0])
            self._vr.seek(0)
            if (shape[1], shape[0]) != size:
                raise VideoDecodeError(
                    path, f"decord reads another of the file's {num_video} video streams than "
                    f"FFmpeg's best one (#{best.stream_index}, {size[0]}x{size[1]}) and cannot "
                    "be told which; use the torchcodec or pyav backend")
        self.sequential = reorders(path)
        try:
            self._vr.seek(0)
        except Exception as err:  # noqa: BLE001 - e.g. "Failed to seek to frame 0" (corrupt index)
            raise VideoDecodeError(path, decord_reason(one_line(err))) from None

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        if self.sequential:
            batch = self._read_forward(uniq)
        else:
            try:
                batch = self._vr.get_batch(uniq).asnumpy()
            except Exception as err:  # noqa: BLE001
                raise FrameDecodeError(self.path, decord_reason(one_line(err))) from None
        frames = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        return gather(frames, inverse).contiguous()

    def _read_forward(self, uniq: list[int]) -> np.ndarray:
        want, last = frozenset(uniq), uniq[-1]
        out: dict[int, np.ndarray] = {}
        try:
            self._vr.seek(0)
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, decord_reason(one_line(err))) from None
        for k in range(last + 1):
            try:
                frame = self._vr.next()
            except StopIteration:
                break
            except Exception:  # noqa: BLE001 - DECORDError: a packet it cannot decode
                raise FrameDecodeError(
                    self.path, f"decord stopped at frame {k}: its decoder rejected a packet at or "
                    "after it and does not resume after one; use the torchcodec or pyav backend"
                ) from None
            if k in want:
                out[k] = frame.asnumpy()
        if len(out) < len(uniq):
            missing = next(k for k in uniq if k not in out)
            raise FrameDecodeError(self.path, f"frame {missing} is past the decodable end")
        return np.stack([out[k] for k in uniq])

    def close(self) -> None:
        self._vr = None

    def __enter__(self) -> "DecordDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
