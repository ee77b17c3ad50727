"""PyAV backend: FFmpeg through ``av``.

* **Stream**: FFmpeg's best video stream (``av_find_best_stream``, as torchcodec and the command
  line pick it), not simply the first.
* **Numbering** (:func:`~vidssl.data.decoders.numbering.frame_numbering`, shared with the other
  backends): for ``"pts"`` files the container is demuxed once on open (packets only, nothing
  decoded) to list every frame's presentation timestamp and the keyframes; frame ``i`` is the
  ``i``-th smallest timestamp. A set of indices is decoded forward from the keyframe before the
  first wanted frame, seeking again only when the next wanted frame lies past a later keyframe.
  For ``"count"`` files (AVI with B-frames: the reference frames' packets carry no presentation
  timestamp, and the decoded frames' timestamps are those of other packets) the stream is
  decoded from its start and the frames are counted.
* **Bad packets**: a packet the decoder rejects yields no frame and decoding carries on (as the
  command-line tool does), so one corrupt packet costs its own frame, not the clip.
* **Conversion**: through a libavfilter graph, ``scale=flags=bicubic`` then ``format=rgb24``:
  the conversion the FFmpeg command line and torchcodec use, so 10-bit sources match them (PyAV's
  ``to_ndarray`` converts with other swscale settings: up to 134 grey levels apart on 10-bit
  H.264; on 8-bit 4:2:0 both agree, and the graph is also ~4x faster per frame). The container's
  rotation is applied (the command line's ``-autorotate``; PyAV alone does not).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from vidssl.data.decoders.base import (
    FrameDecodeError,
    VideoMeta,
    NO_VIDEO_STREAM,
    UNSUPPORTED_CODEC,
    explain_open_failure,
    gather,
    one_line,
    plan_indices,
)
from vidssl.data.decoders.numbering import COUNT, frame_numbering, open_av
from vidssl.errors import MissingDependencyError, VideoDecodeError


def _import():
    try:
        import av
    except ImportError:
        raise MissingDependencyError("av", "pyav", "the PyAV decoder") from None
    return av


def header_rotation(path: str, stream_index: int) -> float:
    """The display-matrix rotation of a stream in degrees (``av_display_rotation_get``'s sign),
    read from the container header with torchcodec (PyAV exposes it only on decoded frames)."""
    try:
        from torchcodec.decoders import get_container_metadata

        rotation = get_container_metadata(path).streams[stream_index].rotation
    except Exception:  # noqa: BLE001 - no header rotation to read: frames say it anyway
        return 0.0
    return float(rotation or 0.0)


def upright(frame: np.ndarray, rotation: float) -> np.ndarray:
    """Rotate an ``(H, W, C)`` frame by its display matrix as the FFmpeg command line's
    autorotation does (``transpose=clock`` for -90, flips for 180, ``transpose=cclock`` for 90)."""
    turn = round(-rotation / 90) % 4
    if turn == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-turn))


class PyAVDecoder:
    """Decode with PyAV. ``num_threads`` > 1 enables FFmpeg frame threading."""

    backend = "pyav"

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, num_threads: int = 1):
        self.path = path
        av = _import()
        self._av = av
        self._container = None
        self._graphs: dict[tuple, object] = {}
        try:
            self._container = open_av(av, path)
            if not self._container.streams.video:
                raise VideoDecodeError(path, NO_VIDEO_STREAM)
            self._stream = self._container.streams.best("video") or self._container.streams.video[0]
            if self._stream.codec_context is None:
                raise VideoDecodeError(path, UNSUPPORTED_CODEC)
            if num_threads > 1:
                self._stream.thread_type = "AUTO"
                self._stream.codec_context.thread_count = num_threads
            self.numbering = frame_numbering(path)
            pts, keys, listed = [], [], 0
            for packet in self._container.demux(self._stream):
                if packet.size <= 0 or packet.is_discard:
                    continue
                listed += 1
                if packet.pts is not None:
                    pts.append(packet.pts)
                    keys.append(packet.is_keyframe)
            order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
            self._pts = np.asarray(pts, dtype=np.int64)[order]
            # A keyframe's packet pts sorts into the frame it starts; the keyframe *positions*
            # in presentation order are where decoding can restart.
            self._keyframe_pos = np.flatnonzero(np.asarray(keys, dtype=bool)[order])
            rate = self._stream.average_rate or self._stream.guessed_rate
            ctx = self._stream.codec_context
            self._rotation = header_rotation(path, self._stream.index)
            width, height = int(ctx.width), int(ctx.height)
            self._coded = (width, height)
            if round(self._rotation / 90) % 2:
                width, height = height, width
            count = listed if self.numbering == COUNT else len(self._pts)
            self._meta = VideoMeta(count, float(rate) if rate else 0.0, width, height)
        except VideoDecodeError:
            self.close()
            raise
        except Exception as err:  # noqa: BLE001 - any av.error becomes one clear line
            self.close()
            raise VideoDecodeError(path, explain_open_failure(path, err)) from None
        if self._meta.num_frames <= 0:
            self.close()
            raise VideoDecodeError(path, "no decodable video frames")
        if self._keyframe_pos.size == 0 or self._keyframe_pos[0] != 0:
            self._keyframe_pos = np.concatenate([[0], self._keyframe_pos]).astype(np.int64)

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def _keyframe_before(self, index: int) -> int:
        return int(self._keyframe_pos[np.searchsorted(self._keyframe_pos, index, "right") - 1])

    # -- decoding -----------------------------------------------------------------------------

    def _decoded(self) -> Iterator:
        """Frames from the demuxer's current position; a rejected packet yields none. The
        demuxer's last (empty) packet drains the decoder."""
        av = self._av
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:  # this packet only: the stream goes on
                continue
            yield from frames

    def _rgb(self, frame) -> np.ndarray:
        """``(H, W, 3)`` uint8 through the libavfilter graph (see the module docstring)."""
        if (frame.width, frame.height) != self._coded:
            # The size changed mid-stream (found by fuzzing): scale to the stream's declared
            # size, as the protocol promises one size per file.
            frame = frame.reformat(width=self._coded[0], height=self._coded[1])
        key = (frame.width, frame.height, frame.format.name)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._av.filter.Graph()
            src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                   time_base=self._stream.time_base)
            scale = graph.add("scale", "flags=bicubic")
            fmt = graph.add("format", "rgb24")
            sink = graph.add("buffersink")
            src.link_to(scale)
            scale.link_to(fmt)
            fmt.link_to(sink)
            graph.configure()
            self._graphs[key] = graph
        graph.push(frame)
        rgb = graph.pull().to_ndarray()
        rotation = frame.rotation if isinstance(frame.rotation, (int, float)) and abs(
            frame.rotation) <= 360 else self._rotation
        return upright(rgb, rotation)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        if self._container is None:
            raise VideoDecodeError(self.path, "decoder is closed")
        try:
            if self.numbering == COUNT:
                out = self._read_counting(uniq)
            else:
                out = self._read_by_timestamp(uniq)
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, one_line(err)) from None
        stacked = np.stack([out[i] for i in uniq])
        frames = torch.from_numpy(stacked).permute(0, 3, 1, 2)
        return gather(frames, inverse).contiguous()

    def _read_counting(self, uniq: list[int]) -> dict[int, np.ndarray]:
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        want, last = frozenset(uniq), uniq[-1]
        out: dict[int, np.ndarray] = {}
        count = 0
        for frame in self._decoded():
            if count in want:
                out[count] = self._rgb(frame)
            count += 1
            if count > last:
                break
        if len(out) < len(uniq):
            missing = next(k for k in uniq if k not in out)
            raise FrameDecodeError(
                self.path, f"frame {missing} is past the decodable end: the stream decoded to "
                f"{count} frames (the container lists {self._meta.num_frames})")
        return out

    def _read_by_timestamp(self, uniq: list[int]) -> dict[int, np.ndarray]:
        pts_to_pos = {int(p): i for i, p in enumerate(self._pts)}
        wanted = frozenset(uniq)
        out: dict[int, np.ndarray] = {}
        frames_iter = None
        position = -1  # presentation position of the last decoded frame
        for target in uniq:
            if target in out:
                continue
            keyframe = self._keyframe_before(target)
            if frames_iter is None or keyframe > position + 1 or target <= position:
                self._container.seek(int(self._pts[keyframe]), stream=self._stream,
                                     backward=True, any_frame=False)
                frames_iter = self._decoded()
                position = -1
            for frame in frames_iter:
                pos = pts_to_pos.get(frame.pts)
                if pos is None:
                    continue
                position = pos
                if pos in wanted and pos not in out:
                    out[pos] = self._rgb(frame)
                if pos >= target:
                    break
            else:
                frames_iter = None  # drained: the next target seeks again
            if target not in out:
                raise FrameDecodeError(self.path, f"frame {target} could not be decoded "
                                                  "(its packet is corrupt or truncated)")
        return out

    def close(self) -> None:
        self._graphs = {}
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "PyAVDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
