"""PyAV backend: FFmpeg through ``av``, with a packet index for exact frame numbering.

On open, the container is demuxed once (packets only, nothing decoded) to list every video
frame's presentation timestamp and whether it is a keyframe; frame ``i`` is the ``i``-th smallest
timestamp, which is how torchcodec's exact mode numbers frames too. Reading a set of indices
decodes forward from the keyframe before the first wanted frame and only seeks again when the
next wanted frame lies past a later keyframe, so each clip is decoded once, without per-frame
seeks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vidssl.data.decoders.base import (
    VideoMeta,
    NO_VIDEO_STREAM,
    UNSUPPORTED_CODEC,
    explain_open_failure,
    gather,
    one_line,
    plan_indices,
)
from vidssl.errors import MissingDependencyError, VideoDecodeError


def _import():
    try:
        import av
    except ImportError:
        raise MissingDependencyError("av", "pyav", "the PyAV decoder") from None
    return av


class PyAVDecoder:
    """Decode with PyAV. ``num_threads`` > 1 enables FFmpeg frame threading."""

    backend = "pyav"

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, num_threads: int = 1):
        self.path = path
        av = _import()
        self._container = None
        try:
            self._container = av.open(path, metadata_errors="ignore")
            if not self._container.streams.video:
                raise VideoDecodeError(path, NO_VIDEO_STREAM)
            self._stream = self._container.streams.video[0]
            if self._stream.codec_context is None:
                raise VideoDecodeError(path, UNSUPPORTED_CODEC)
            if num_threads > 1:
                self._stream.thread_type = "AUTO"
                self._stream.codec_context.thread_count = num_threads
            pts, keys = [], []
            for packet in self._container.demux(self._stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(packet.pts)
                    keys.append(packet.is_keyframe)
            order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
            self._pts = np.asarray(pts, dtype=np.int64)[order]
            # A keyframe's packet pts sorts into the frame it starts; the keyframe *positions*
            # in presentation order are where decoding can restart.
            self._keyframe_pos = np.flatnonzero(np.asarray(keys, dtype=bool)[order])
            rate = self._stream.average_rate or self._stream.guessed_rate
            ctx = self._stream.codec_context
            self._meta = VideoMeta(len(self._pts), float(rate) if rate else 0.0,
                                   int(ctx.width), int(ctx.height))
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

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        if self._container is None:
            raise VideoDecodeError(self.path, "decoder is closed")
        pts_to_pos = {int(p): i for i, p in enumerate(self._pts)}
        wanted = frozenset(uniq)
        out: dict[int, np.ndarray] = {}
        frames_iter = None
        position = -1  # presentation position of the last decoded frame
        try:
            for target in uniq:
                if target in out:
                    continue
                keyframe = self._keyframe_before(target)
                if frames_iter is None or keyframe > position + 1 or target <= position:
                    self._container.seek(int(self._pts[keyframe]), stream=self._stream,
                                         backward=True, any_frame=False)
                    frames_iter = self._container.decode(self._stream)
                    position = -1
                for frame in frames_iter:
                    pos = pts_to_pos.get(frame.pts)
                    if pos is None:
                        continue
                    position = pos
                    if pos in out or pos not in wanted:
                        if pos >= target:
                            break
                        continue
                    if (frame.width, frame.height) != (self._meta.width, self._meta.height):
                        # The size changed mid-stream (found by fuzzing): scale to the
                        # stream's declared size, as the protocol promises one size per file.
                        frame = frame.reformat(width=self._meta.width, height=self._meta.height)
                    out[pos] = frame.to_ndarray(format="rgb24")
                    if pos >= target:
                        break
                if target not in out:
                    raise VideoDecodeError(self.path, f"frame {target} could not be decoded "
                                                      "(truncated or corrupt stream)")
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise VideoDecodeError(self.path, one_line(err)) from None
        stacked = np.stack([out[i] for i in uniq])
        frames = torch.from_numpy(stacked).permute(0, 3, 1, 2)
        return gather(frames, inverse).contiguous()

    def close(self) -> None:
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

