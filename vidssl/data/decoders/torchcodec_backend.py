"""torchcodec backend (the default): FFmpeg through PyTorch's own decoding library.

Two read paths, chosen per file by :func:`~vidssl.data.decoders.numbering.frame_numbering`:

* ``"pts"`` files (timestamped containers, or streams that do not reorder): torchcodec's
  ``VideoDecoder`` in exact seek mode, ``get_frames_at`` on the sorted unique indices. If that
  fails (a packet the decoder rejects anywhere between the keyframe and the last wanted frame
  fails the whole call), the request is decoded again packet by packet with torchcodec's
  demuxer/decoder blocks, seeking to the keyframe before each wanted frame and matching frames by
  timestamp, so a rejected packet costs only its own frame (a *hole*, reported as
  :class:`~vidssl.data.decoders.base.FrameDecodeError`), never a neighbour's.
* ``"count"`` files (AVI and other timestamp-less containers whose decoder reorders frames, i.e.
  XVID/DivX with B-frames as UCF101 and HMDB51 ship them, H.264 in AVI): torchcodec's own seek
  returns frame ``k - 1`` (or ``k - 2``) for ``k`` there and cannot reach the last frames, so the
  stream is decoded from its start and the frames it yields are counted, which is the contract's
  definition itself. Only the wanted frames are converted to RGB. Cost: decoding from frame 0 up
  to the last wanted frame instead of from the keyframe before the first (measured in
  ``docs/decoding.md``).

Both paths convert with the same libswscale/libavfilter path and apply the container's rotation.
"""

from __future__ import annotations

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
from vidssl.data.decoders.numbering import COUNT, frame_numbering
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
    """Decode with torchcodec (see the module docstring for the two read paths).

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
        self.num_threads = num_threads
        decoder_cls = _import()
        self._dec = None
        self._demuxer = None
        try:
            self.numbering = frame_numbering(path)
            if self.numbering == COUNT:
                self._meta = self._open_counting()
            else:
                self._dec = decoder_cls(path, seek_mode=seek_mode, num_ffmpeg_threads=num_threads,
                                        dimension_order="NCHW", device=device)
                md = self._dec.metadata
                self._meta = VideoMeta(int(md.num_frames or 0), float(md.average_fps or 0.0),
                                       int(md.width or 0), int(md.height or 0))
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001 - any library error becomes one clear line
            raise VideoDecodeError(path, explain_open_failure(path, err)) from None
        if self._meta.num_frames <= 0:
            raise VideoDecodeError(path, "no decodable video frames")

    def _open_counting(self) -> VideoMeta:
        """Metadata from torchcodec's demuxer: the frame count is the packet scan's (the frames
        the container lists), the size is the displayed one (as the frames come out)."""
        from torchcodec.decoders import Demuxer

        demuxer = Demuxer(self.path)
        stream = demuxer.streams[0]
        scan = stream.scan()
        header = stream.metadata  # width and height as displayed (rotation applied)
        width, height = int(header.width or 0), int(header.height or 0)
        fps = float(header.average_fps_from_header or 0.0)
        if fps <= 0 and len(scan) > 1:
            fps = float(scan.average_fps_from_content)
        stream.make_decoder(device="cpu", num_ffmpeg_threads=1)  # no decoder: fail at open
        return VideoMeta(len(scan), fps, width, height)

    @property
    def metadata(self) -> VideoMeta:
        return self._meta

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        uniq, inverse = plan_indices(indices, self.path, self._meta.num_frames)
        if not uniq:
            return torch.empty(0, 3, self._meta.height, self._meta.width, dtype=torch.uint8)
        if self.numbering == COUNT:
            frames = self._decode_counting(uniq)
        else:
            try:
                frames = self._dec.get_frames_at(uniq).data
            except Exception:  # noqa: BLE001 - a rejected packet somewhere: go packet by packet
                frames = self._decode_by_timestamp(uniq)
        return gather(frames, inverse)

    # -- the blocks paths ---------------------------------------------------------------------

    def _blocks(self):
        from torchcodec.decoders import ColorConverter, Demuxer

        demuxer = Demuxer(self.path)
        stream = demuxer.streams[0]
        return demuxer, stream, ColorConverter()

    def _feed(self, decoder, packet) -> list:
        """The frames ``packet`` releases; a packet the decoder rejects releases none (the
        command-line tool logs it and carries on, and so do we)."""
        try:
            return decoder.decode(packet)
        except RuntimeError:
            return []

    def _decode_counting(self, wanted: list[int]) -> torch.Tensor:
        """Decode from the start, counting frames; convert only the wanted ones."""
        try:
            demuxer, stream, convert = self._blocks()
            decoder = stream.make_decoder(device="cpu", num_ffmpeg_threads=self.num_threads)
            want, last = set(wanted), wanted[-1]
            out: dict[int, torch.Tensor] = {}
            count = 0
            for packet in demuxer:
                for frame in self._feed(decoder, packet):
                    if count in want:
                        out[count] = convert.convert(frame).data
                    count += 1
                if count > last:
                    break
            else:
                for frame in decoder.drain():
                    if count in want:
                        out[count] = convert.convert(frame).data
                    count += 1
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, one_line(err)) from None
        if len(out) < len(wanted):
            missing = [k for k in wanted if k not in out]
            raise FrameDecodeError(
                self.path, f"frame {missing[0]} is past the decodable end: the stream decoded to "
                f"{count} frames (the container lists {self._meta.num_frames})")
        return torch.stack([out[k] for k in wanted])

    def _decode_by_timestamp(self, wanted: list[int]) -> torch.Tensor:
        """Seek to the keyframe before each run of wanted frames, decode packet by packet, and
        keep the frames whose timestamp is a wanted frame's; a wanted timestamp that never comes
        out is a hole."""
        try:
            demuxer, stream, convert = self._blocks()
            scan = stream.scan()
            pts = scan.pts_seconds.tolist()
            keys = scan.key_frame_indices.tolist() or [0]
            decoder = stream.make_decoder(device="cpu", num_ffmpeg_threads=self.num_threads)
            position = {p: i for i, p in enumerate(pts)}
            want = set(wanted)
            out: dict[int, torch.Tensor] = {}
            reached = -1  # presentation index of the last frame decoded since the last seek
            for target in wanted:
                if target in out:
                    continue
                key = keys[max(0, int(np.searchsorted(keys, target, "right")) - 1)]
                if reached < 0 or target <= reached or key > reached:
                    demuxer.seek(scan.key_frame_seconds_for(pts[target]))
                    decoder.reset()
                    reached = -1
                done = False
                for packet in demuxer:
                    for frame in self._feed(decoder, packet):
                        at = position.get(frame.pts_seconds)
                        if at is None:
                            continue
                        reached = max(reached, at)
                        if at in want and at not in out:
                            out[at] = convert.convert(frame).data
                    if reached >= target:
                        done = True
                        break
                if not done:
                    for frame in decoder.drain():
                        at = position.get(frame.pts_seconds)
                        if at is not None and at in want and at not in out:
                            out[at] = convert.convert(frame).data
                    decoder.reset()
                    reached = -1
                if target not in out:
                    raise FrameDecodeError(self.path, f"frame {target} could not be decoded "
                                                      "(its packet is corrupt or truncated)")
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, one_line(err)) from None
        return torch.stack([out[k] for k in wanted])

    def close(self) -> None:
        self._dec = None

    def __enter__(self) -> "TorchCodecDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
