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

Faster paths, used only where :meth:`TorchCodecDecoder.verify_seeking` (run when an index probes
the file) showed them to give the same frames, and passed back as ``verified_seek=token``:
MPEG-4 part 2 ``"count"`` files are read from a keyframe, frames placed by timestamp
(:meth:`~TorchCodecDecoder._from_keyframe`); ``"pts"`` files that do not reorder and whose
timestamps lie on the fps grid open in torchcodec's approximate mode (no scan per open).

Every path converts with the same libswscale/libavfilter path and applies the container's
rotation.
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
from vidssl.data.decoders.numbering import (COUNT, blocks_available, file_token, frame_numbering,
                                             release_delay, reorders)
from vidssl.errors import MissingDependencyError, VideoDecodeError

# "count" files of these codecs may be read from a keyframe (``_from_keyframe``): MPEG-4 part 2
# (XVID, DivX, DX50, FMP4, ...), whose decoder drops after a seek the B-frames that lost their
# reference and releases every frame the same number of packets late as in a sequential decode.
# H.264 and HEVC in AVI are counted from the start: their decoders may emit such frames
# (concealed) and change their reorder delay mid-stream.
KEYFRAME_SEEK_CODECS = ("mpeg4",)
SEEK_MARGIN = 3  # seek to a keyframe at least this many packets (plus the delay) before the clip


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


def _hwc(frame) -> torch.Tensor:
    """The ``(H, W, 3)`` storage of a converted frame (``ColorConverter`` returns a CHW view
    of it)."""
    return frame.data.permute(1, 2, 0)


def _nchw(frames: dict[int, torch.Tensor], order: list[int], path: str) -> torch.Tensor:
    """Stack HWC frames (a plain copy) and view them as NCHW, the layout torchcodec's
    ``VideoDecoder`` returns; stacking the CHW views instead is a transposing copy, measured
    2 ms for 16 frames of 320x240 (as long as decoding them). A frame whose size differs from
    the first's (a corrupt stream that changes size mid-file) is a :class:`FrameDecodeError`."""
    first = frames[order[0]].shape
    for k in order:
        if frames[k].shape != first:
            raise FrameDecodeError(path, f"frame {k} is {frames[k].shape[1]}x{frames[k].shape[0]}, "
                                         f"frame {order[0]} {first[1]}x{first[0]}: the frame size "
                                         "changes inside the stream (corrupt file)")
    return torch.stack([frames[k] for k in order]).permute(0, 3, 1, 2)


class TorchCodecDecoder:
    """Decode with torchcodec (see the module docstring for the two read paths).

    Args:
        path: video file.
        seek_mode: ``"exact"`` (default) scans the container once so frame counts and indices are
            exact; ``"approximate"`` trusts the header (faster to open, wrong on some files).
        num_threads: FFmpeg decoding threads. 1 is right inside DataLoader workers.
        device: ``"cpu"``; GPU decoding lives in a separate backend.
        verified_seek: the ``seek_token`` the index's probe gave this file (0: none); enables
            the faster path verified for it, if the file is unchanged.
    """

    backend = "torchcodec"
    accepts_verified_seek = True

    @staticmethod
    def check_available() -> None:
        _import()

    def __init__(self, path: str, seek_mode: str = "exact", num_threads: int = 1,
                 device: str = "cpu", verified_seek: int = 0):
        self.path = path
        self.num_threads = num_threads
        self._keyframe_seek = False
        decoder_cls = _import()
        self._dec = None
        self._demuxer = None
        self.seek_mode = seek_mode
        self.device = str(device)
        try:
            self.numbering = frame_numbering(path)
            if self.numbering == COUNT and self.device != "cpu":
                # The counting path runs on torchcodec's CPU blocks; not verified on NVDEC (no
                # GPU was available): ClipDataset's CPU fallback decoder reads such files.
                raise VideoDecodeError(
                    path, "its frames are numbered by counting from the start (an AVI whose "
                    "decoder reorders frames), which this GPU decoder does not do; use a CPU "
                    "backend (the loader's fallback decoder reads it)")
            if self.numbering == COUNT:
                self._meta = self._open_counting()
                self._keyframe_seek = bool(self._delay is not None and verified_seek
                                           and verified_seek == file_token(path))
            else:
                if verified_seek and seek_mode == "exact" and verified_seek == file_token(path):
                    seek_mode = "approximate"  # verified equal to exact for this file: no scan
                self.seek_mode = seek_mode
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
        """Open torchcodec's demuxer, packet decoder and colour converter (kept for the reads).
        The frame count is the packet scan's (the frames the container lists), the size the
        displayed one (rotation applied), as the frames come out."""
        if not blocks_available():
            raise VideoDecodeError(
                self.path, "its frames are numbered by counting from the start (an AVI whose "
                "decoder reorders frames), which needs torchcodec >= 0.17 (pip install -U "
                "'torchcodec>=0.17') or the pyav backend")
        from torchcodec.decoders import ColorConverter, Demuxer

        self._demuxer = Demuxer(self.path)
        self._stream = self._demuxer.streams[0]
        scan = self._stream.scan()  # also rewinds the demuxer to the start
        self._scan_pts = scan.pts_seconds.tolist()
        self._position = {p: i for i, p in enumerate(self._scan_pts)}
        self._keys = scan.key_frame_indices.tolist()
        header = self._stream.metadata
        width, height = int(header.width or 0), int(header.height or 0)
        fps = float(header.average_fps_from_header or 0.0)
        if fps <= 0 and len(scan) > 1:
            fps = float(scan.average_fps_from_content)
        self._decoder = self._stream.make_decoder(device="cpu",
                                                  num_ffmpeg_threads=self.num_threads)
        self._convert = ColorConverter()
        self._at_start = True
        delay = release_delay(self.path)
        self._delay = delay if header.codec in KEYFRAME_SEEK_CODECS else None
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
            except Exception as err:  # noqa: BLE001 - a rejected packet: go packet by packet
                if self.device != "cpu" or not blocks_available():  # that path: CPU, >= 0.17
                    raise FrameDecodeError(self.path, one_line(err)) from None
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
        """Frames ``wanted`` (sorted, unique) of a ``"count"`` file: from the keyframe before
        them where that is safe (:meth:`_from_keyframe`), else decoded from the start and
        counted; only the wanted frames are converted to RGB."""
        count = self._meta.num_frames
        try:
            out = self._from_keyframe(wanted) if self._keyframe_seek else None
            if out is None:
                out, count = self._from_start(wanted)
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, one_line(err)) from None
        if len(out) < len(wanted):
            missing = [k for k in wanted if k not in out]
            raise FrameDecodeError(
                self.path, f"frame {missing[0]} is past the decodable end: the stream decoded to "
                f"{count} frames (the container lists {self._meta.num_frames})")
        return _nchw(out, wanted, self.path)

    def verify_seeking(self) -> int:
        """Decode the whole file once and check that :meth:`_from_keyframe` would number every
        frame as the count does: each frame's timestamp is that of the packet ``delay`` places
        after it in the scan (frames drained at the end carry none), and the stream decodes to
        as many frames as the container lists (a frame lost to a corrupt packet shifts the
        count, and a seek past it could not know). Returns :func:`file_token` of the file when
        it holds, else 0 (and 0 for files this backend does not count)."""
        if self.numbering != COUNT:
            return self._verify_grid()
        if self._delay is None:
            return 0
        if not self._at_start:
            self._rewind(0)
        self._at_start = False
        count, drained = 0, False
        try:
            for packet in self._demuxer:
                try:
                    frames = self._decoder.decode(packet)
                except RuntimeError:
                    return 0
                for frame in frames:
                    if self._position.get(frame.pts_seconds) != count + self._delay:
                        return 0
                    count += 1
            for frame in self._decoder.drain():  # the last frames carry no timestamp of their own
                drained = True
                stamp = self._position.get(frame.pts_seconds)
                if stamp is not None and stamp != count + self._delay:
                    return 0
                count += 1
            self._decoder.reset()
        except Exception:  # noqa: BLE001 - not verifiable: keep counting from the start
            return 0
        if count != self._meta.num_frames or not (drained or count == 0):
            return 0
        return file_token(self.path)

    def _verify_grid(self) -> int:
        """For a ``"pts"`` file: whether torchcodec's approximate seek mode, which maps frame
        ``k`` to timestamp ``k / fps`` from the header instead of scanning the file on every
        open, finds exactly the frames of the exact mode: the stream does not reorder frames
        (with B-frames the seek can land on a keyframe shown after the target: measured on
        HEVC in MP4, frame 48 for 45), every scanned timestamp is on that grid (from 0) and the
        header's frame count is the scan's. :func:`file_token` if so."""
        if self.seek_mode != "exact" or reorders(self.path):
            return 0
        if not blocks_available():
            return 0
        try:
            from torchcodec.decoders import Demuxer

            scan = Demuxer(self.path).streams[0].scan()
            approx = _import()(self.path, seek_mode="approximate", num_ffmpeg_threads=1).metadata
            fps, count = float(approx.average_fps or 0.0), int(approx.num_frames or 0)
            pts = scan._pts.tolist()
            num, den = scan._time_base_num, scan._time_base_den
        except Exception:  # noqa: BLE001 - not verifiable: keep scanning on open
            return 0
        if fps <= 0 or count != len(pts) or count != self._meta.num_frames:
            return 0
        if any(p != round(k / fps * den / num) for k, p in enumerate(pts)):
            return 0
        return file_token(self.path)

    def _rewind(self, scan_index: int) -> None:
        self._demuxer.seek(self._scan_pts[scan_index])
        self._decoder.reset()
        self._at_start = scan_index == 0

    def _from_start(self, wanted: list[int]) -> tuple[dict[int, torch.Tensor], int]:
        if not self._at_start:
            self._rewind(0)
        self._at_start = False
        want, last = set(wanted), wanted[-1]
        out: dict[int, torch.Tensor] = {}
        count = 0
        for packet in self._demuxer:
            for frame in self._feed(self._decoder, packet):
                if count in want:
                    out[count] = _hwc(self._convert.convert(frame))
                count += 1
            if count > last:
                break
        else:
            for frame in self._decoder.drain():
                if count in want:
                    out[count] = _hwc(self._convert.convert(frame))
                count += 1
            self._decoder.reset()
        return out, count

    def _from_keyframe(self, wanted: list[int]) -> dict[int, torch.Tensor] | None:
        """Seek to a keyframe a few frames before ``wanted[0]`` and place the decoded frames by
        their timestamps: FFmpeg stamps frame ``k`` of an MPEG-4 part 2 stream with the
        timestamp of the packet ``delay`` places after ``k`` in the scan (the packet that
        released it), the same after a seek as in a decode from the start, and it drops the
        B-frames a seek cut off from their reference. Every frame must land exactly one after
        the previous one; anything else (a frame before its keyframe, a rejected packet, a
        stamp out of step) returns ``None`` and the caller counts from the start."""
        first, last, delay = wanted[0], wanted[-1], self._delay
        keys = [k for k in self._keys if 0 < k <= first - delay - SEEK_MARGIN]
        if not keys:
            return None  # the first keyframe: counting from the start is the same work
        self._rewind(keys[-1])
        want = set(wanted)
        out: dict[int, torch.Tensor] = {}
        at_frame: int | None = None

        def place(frame) -> bool:
            nonlocal at_frame
            stamp = self._position.get(frame.pts_seconds)
            if at_frame is None:
                if stamp is None or not 0 <= stamp - delay <= first:
                    return False
                at_frame = stamp - delay
            else:
                at_frame += 1
                if stamp is not None and stamp - delay != at_frame:
                    return False
            if at_frame in want:
                out[at_frame] = _hwc(self._convert.convert(frame))
            return True

        for packet in self._demuxer:
            try:
                frames = self._decoder.decode(packet)
            except RuntimeError:
                return None  # a rejected packet shifts the count: only a full count is exact
            if not all(place(frame) for frame in frames):
                return None
            if at_frame is not None and at_frame >= last:
                return out
        frames = self._decoder.drain()
        self._decoder.reset()
        if not all(place(frame) for frame in frames) or len(out) < len(wanted):
            return None
        return out

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
                            out[at] = _hwc(convert.convert(frame))
                    if reached >= target:
                        done = True
                        break
                if not done:
                    for frame in decoder.drain():
                        at = position.get(frame.pts_seconds)
                        if at is not None and at in want and at not in out:
                            out[at] = _hwc(convert.convert(frame))
                    decoder.reset()
                    reached = -1
                if target not in out:
                    raise FrameDecodeError(self.path, f"frame {target} could not be decoded "
                                                      "(its packet is corrupt or truncated)")
        except VideoDecodeError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FrameDecodeError(self.path, one_line(err)) from None
        return _nchw(out, wanted, self.path)

    def close(self) -> None:
        self._dec = None
        self._demuxer = self._decoder = None

    def __enter__(self) -> "TorchCodecDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
