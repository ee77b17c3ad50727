"""Frame-exactness conformance: small generated files of every kind that matters, an independent
reference decode, and a checker that holds any decoder backend against it.

**The contract.** Frame index ``k`` of a file is the ``k``-th frame that a sequential decode of
the file by the FFmpeg command-line tool yields (``ffmpeg -i FILE -map 0:<best> -fps_mode
passthrough -pix_fmt rgb24``): the video stream FFmpeg's best-stream rule picks
(``av_find_best_stream``), every frame the decoder emits, in presentation order, with the
container's rotation applied (the tool's default ``-autorotate``). 8-bit sources must come back
pixel-equal. Deeper sources (10-bit) are converted to 8-bit RGB the way that command converts
them (libswscale through libavfilter's ``scale`` filter, ``flags=bicubic``, the tool's default):
that is the *named reference conversion*, and every backend is held to it within
:data:`HIGH_BIT_DEPTH_TOLERANCE` grey levels.

One refinement, for containers that carry presentation timestamps (MP4, MKV, WebM, ...): frames
are numbered by their packet's presentation position, known from the container without decoding
(index builds stay a demux-only scan). That equals the sequential count unless a packet does not
decode at all; such a packet leaves a **hole**: reading it raises ``VideoDecodeError`` (never a
neighbouring frame) and later frames keep their presentation position. Containers without
presentation timestamps (AVI) are numbered by the sequential count itself.

The file kinds (:data:`KINDS`) are generated in seconds with FFmpeg's ``lavfi`` test source;
``tests/data/test_conformance.py`` runs every kind against every installed backend, and
``benchmarks/decode_conformance.py`` writes the table in ``docs/decoding.md``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vidssl.errors import VidsslError

# Deeper-than-8-bit sources: the largest per-channel difference allowed against the reference
# conversion. Measured 0 for torchcodec (system FFmpeg) and PyAV (its bundled FFmpeg) with the
# same libavfilter ``scale`` path; the margin absorbs rounding differences between libswscale
# versions, nothing more (a different chroma filter differs by ~100 at sharp edges).
HIGH_BIT_DEPTH_TOLERANCE = 2

WIDTH, HEIGHT, FPS, SECONDS = 128, 96, 25, 2


class ToolMissing(VidsslError):
    """The FFmpeg command-line tools or an encoder a kind needs are not installed."""


# ------------------------------------------------------------------------------- the tools --

def ffmpeg_path(tool: str = "ffmpeg") -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} is not installed (apt-get install ffmpeg)")
    return path


@functools.lru_cache(maxsize=None)
def available_encoders() -> frozenset[str]:
    """Encoder names of the local ``ffmpeg``."""
    out = subprocess.run([ffmpeg_path(), "-hide_banner", "-encoders"], capture_output=True,
                         text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def _run(cmd: Sequence[str]) -> bytes:
    proc = subprocess.run(list(cmd), capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise VidsslError(f"{os.path.basename(cmd[0])} failed: {err[-1] if err else proc.returncode}")
    return proc.stdout


def _ffmpeg(*args: str) -> None:
    _run([ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args])


def _ffprobe_json(path: str | os.PathLike, *args: str) -> dict:
    return json.loads(_run([ffmpeg_path("ffprobe"), "-v", "error", "-of", "json", *args,
                            os.fspath(path)]))


def _source(width: int = WIDTH, height: int = HEIGHT, seconds: float = SECONDS,
            rate: int = FPS) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}", "-t", str(seconds)]


# ------------------------------------------------------------------------------- the kinds --

@dataclass(frozen=True)
class Kind:
    """One kind of file: how to write it and what it exercises.

    Attributes:
        name: identifier (also the file stem).
        ext: container extension.
        encoders: FFmpeg encoders the recipe needs (the kind is skipped without them).
        description: one line for the conformance table.
        write: ``write(path)`` produces the file.
        high_bit_depth: the source has more than 8 bits per sample (held to the tolerance).
    """

    name: str
    ext: str
    encoders: tuple[str, ...]
    description: str
    write: Callable[[Path], None] = field(repr=False)
    high_bit_depth: bool = False

    def missing_encoders(self) -> list[str]:
        have = available_encoders()
        return [e for e in self.encoders if e not in have]


def _encode(*codec_args: str, source: Sequence[str] | None = None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _ffmpeg(*(source or _source()), *codec_args, str(path))
    return write


def _packets(path: Path, stream: str = "v:0") -> list[dict]:
    return _ffprobe_json(path, "-select_streams", stream, "-show_packets",
                         "-show_entries", "packet=pts,dts,pos,size,flags")["packets"]


def _corrupt_h264_b_frame(path: Path) -> None:
    """H.264 in MP4 (non-reference B-frames, one slice per frame) whose middle B-frame packet
    has its slice NAL type overwritten with an unspecified type: the decoder skips the packet,
    so exactly one frame (out of 50) never comes out; nothing else depends on it."""
    tmp = path.with_name(path.stem + "_src" + path.suffix)
    _ffmpeg(*_source(), "-c:v", "libx264", "-bf", "2",
            "-x264-params", "b-pyramid=none:keyint=25:slices=1:sliced-threads=0", str(tmp))
    packets = _packets(tmp)
    bs = [p for p in packets if "K" not in p["flags"] and p.get("pts") == p.get("dts")]
    target = bs[len(bs) // 2]
    data = bytearray(tmp.read_bytes())
    pos, end = int(target["pos"]), int(target["pos"]) + int(target["size"])
    while pos + 4 < end:  # AVCC: 4-byte big-endian length, then the NAL unit
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4] & 0x1F in (1, 5):
            data[pos + 4] = (data[pos + 4] & 0xE0) | 30
        pos += 4 + length
    path.write_bytes(bytes(data))
    tmp.unlink()


def _corrupt_mpeg4_b_frame(path: Path) -> None:
    """MPEG-4 part 2 AVI with B-frames whose middle B-frame chunk lost its VOP start code
    (turned into user data): the decoder finds no picture in it, so one frame never comes out."""
    tmp = path.with_name(path.stem + "_src" + path.suffix)
    _ffmpeg(*_source(), "-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-g", "12", str(tmp))
    packets = _packets(tmp)
    bs = [p for p in packets if "K" not in p["flags"] and p.get("pts") is not None]
    target = bs[len(bs) // 2]
    data = bytearray(tmp.read_bytes())
    pos = int(target["pos"])
    at = data.find(b"\x00\x00\x01\xb6", pos, pos + int(target["size"]) + 16)
    if at < 0:
        raise VidsslError(f"no VOP start code in the chosen packet of {tmp}")
    data[at + 3] = 0xB2  # user_data_start_code
    path.write_bytes(bytes(data))
    tmp.unlink()


def _rotated(path: Path) -> None:
    """H.264 MP4 whose track header carries a -90 degree display matrix, as a phone that was held
    upright writes it (FFmpeg 5.1's command line cannot set one, so the ``tkhd`` box is patched)."""
    _ffmpeg(*_source(), "-c:v", "libx264", str(path))
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    if at < 0:
        raise VidsslError(f"no tkhd box in {path}")
    version = data[at + 4]  # then flags (3), times, track id, duration, reserved (8), 4 x 2
    matrix = at + 8 + (32 if version == 1 else 20) + 8 + 8
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0,
                                           HEIGHT << 16, 0, 0x40000000)
    path.write_bytes(bytes(data))


def _two_streams(path: Path) -> None:
    """Two video streams of different size and rate; the second is flagged default, so FFmpeg's
    best-stream rule picks it although it is not the first."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
            "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate=15", "-t", str(SECONDS),
            "-map", "0:v", "-map", "1:v", "-c:v", "libx264",
            "-disposition:v:0", "0", "-disposition:v:1", "default", str(path))


_VFR = ["-vf", "settb=1/1000,setpts='(N+0.6*floor(N/3)+0.3*mod(N\\,2))/25/TB'",
        "-fps_mode", "passthrough", "-enc_time_base", "1/1000"]
_DROPPED = ["-vf", "select='not(eq(mod(n\\,10)\\,5))'", "-fps_mode", "passthrough"]
_X265 = "log-level=error:keyint=12"
_AVI = dict(width=160, height=120)  # the AVI kinds: closer to UCF101's 320x240, still tiny

KINDS: tuple[Kind, ...] = (
    Kind("xvid_bframes_avi", "avi", ("mpeg4",),
         "MPEG-4 part 2 (XVID tag) with B-frames in AVI, GOP 12",
         _encode("-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-g", "12", source=_source(**_AVI))),
    Kind("xvid_packed_avi", "avi", ("libxvid",),
         "Xvid with packed B-frames (N-VOP placeholders, empty leading chunks) in AVI",
         _encode("-c:v", "libxvid", "-bf", "2", "-g", "12", source=_source(**_AVI))),
    Kind("divx_bframes_avi", "avi", ("mpeg4",),
         "MPEG-4 part 2 (DX50 tag) with one B-frame, GOP 25, in AVI",
         _encode("-c:v", "mpeg4", "-vtag", "DX50", "-bf", "1", "-g", "25", source=_source(**_AVI))),
    Kind("h264_bframes_avi", "avi", ("libx264",), "H.264 with B-frames in AVI",
         _encode("-c:v", "libx264", "-bf", "2", "-g", "12", source=_source(**_AVI))),
    Kind("mpeg4_avi", "avi", ("mpeg4",), "MPEG-4 part 2 without B-frames in AVI",
         _encode("-c:v", "mpeg4", "-g", "12", source=_source(**_AVI))),
    Kind("msmpeg4_avi", "avi", ("msmpeg4",), "MS-MPEG4 v3 (DIV3) in AVI",
         _encode("-c:v", "msmpeg4", "-g", "12", source=_source(**_AVI))),
    Kind("avi_dropped_frames", "avi", ("mpeg4",),
         "AVI with empty chunks (dropped frames: header says 50, 45 decode)",
         _encode(*_DROPPED, "-c:v", "mpeg4", "-g", "12", source=_source(**_AVI))),
    Kind("corrupt_packet_avi", "avi", ("mpeg4",),
         "MPEG-4 part 2 AVI with B-frames, one B packet without a picture (49 of 50 decode)",
         _corrupt_mpeg4_b_frame),
    Kind("h264_mp4", "mp4", ("libx264",), "H.264 with B-pyramid in MP4, GOP 12",
         _encode("-c:v", "libx264", "-bf", "3", "-g", "12")),
    Kind("h264_mkv", "mkv", ("libx264",), "H.264 with B-pyramid in Matroska, GOP 12",
         _encode("-c:v", "libx264", "-bf", "3", "-g", "12")),
    Kind("hevc_mp4", "mp4", ("libx265",), "HEVC with B-frames in MP4",
         _encode("-c:v", "libx265", "-x265-params", _X265)),
    Kind("hevc_mkv", "mkv", ("libx265",), "HEVC with B-frames in Matroska",
         _encode("-c:v", "libx265", "-x265-params", _X265)),
    Kind("av1_mp4", "mp4", ("libaom-av1",), "AV1 in MP4",
         _encode("-c:v", "libaom-av1", "-cpu-used", "8", "-g", "12")),
    Kind("av1_mkv", "mkv", ("libaom-av1",), "AV1 in Matroska",
         _encode("-c:v", "libaom-av1", "-cpu-used", "8", "-g", "12")),
    Kind("vp9_webm", "webm", ("libvpx-vp9",), "VP9 in WebM (Something-Something v2's format)",
         _encode("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "12")),
    Kind("open_gop_h264_mp4", "mp4", ("libx264",), "H.264 open GOP (non-IDR keyframes), MP4",
         _encode("-c:v", "libx264", "-bf", "3", "-x264-params", "open-gop=1:keyint=12")),
    Kind("open_gop_hevc_mkv", "mkv", ("libx265",), "HEVC open GOP (CRA keyframes), Matroska",
         _encode("-c:v", "libx265", "-x265-params", _X265 + ":open-gop=1")),
    Kind("h264_10bit_mp4", "mp4", ("libx264",), "H.264 High 10 (yuv420p10le) in MP4",
         _encode("-c:v", "libx264", "-pix_fmt", "yuv420p10le"), high_bit_depth=True),
    Kind("hevc_10bit_mkv", "mkv", ("libx265",), "HEVC Main 10 (yuv420p10le) in Matroska",
         _encode("-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", _X265),
         high_bit_depth=True),
    Kind("fullrange_h264_mp4", "mp4", ("libx264",), "H.264 full range (yuvj420p) in MP4",
         _encode("-c:v", "libx264", "-pix_fmt", "yuvj420p", "-color_range", "pc")),
    Kind("rotated_mp4", "mp4", ("libx264",), "H.264 MP4 with a -90 degree display matrix (phone)",
         _rotated),
    Kind("two_streams_mkv", "mkv", ("libx264",),
         "two video streams (64x48 at 25 fps, 128x96 at 15 fps, the second flagged default)",
         _two_streams),
    Kind("vfr_mkv", "mkv", ("libx264",), "variable frame rate H.264 with B-frames, Matroska",
         _encode(*_VFR, "-c:v", "libx264", "-bf", "2")),
    Kind("vfr_mp4", "mp4", ("libx264",), "variable frame rate H.264 with B-frames, MP4",
         _encode(*_VFR, "-c:v", "libx264", "-bf", "2")),
    Kind("corrupt_packet_mp4", "mp4", ("libx264",),
         "H.264 MP4, one B-frame packet that does not decode (49 of 50 frames)",
         _corrupt_h264_b_frame),
)
KINDS_BY_NAME = {k.name: k for k in KINDS}


def write_kind(kind: Kind | str, directory: str | os.PathLike) -> Path:
    """Write one kind's file into ``directory`` (``ToolMissing`` if its encoder is absent)."""
    kind = KINDS_BY_NAME[kind] if isinstance(kind, str) else kind
    missing = kind.missing_encoders()
    if missing:
        raise ToolMissing(f"the local ffmpeg has no {', '.join(missing)} encoder")
    path = Path(directory) / f"{kind.name}.{kind.ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    kind.write(path)
    return path


# --------------------------------------------------------------------------- the reference --

@dataclass
class Reference:
    """What the FFmpeg command line makes of a file.

    Attributes:
        frames: ``uint8 (N, H, W, 3)``, the sequential decode (rotation applied).
        stream_index: the stream decoded (FFmpeg's best video stream).
        expected: for each vidssl frame index, the row of ``frames`` it must equal, or -1 for a
            hole (a packet that does not decode; reading it must raise). Timestamped containers
            put a hole where the packet sits; the others (numbered by the sequential count) at
            the end, where the listed frames outnumber the decoded ones.
        high_bit_depth: the stream has more than 8 bits per sample.
    """

    frames: np.ndarray
    stream_index: int
    expected: np.ndarray
    high_bit_depth: bool

    @property
    def num_frames(self) -> int:
        """The frame count a backend must report (holes included)."""
        return len(self.expected)


def best_video_stream(path: str | os.PathLike) -> int:
    """The index of the stream ``av_find_best_stream`` picks (asked through torchcodec, which
    calls it in the system's libavformat, the library the command-line tool uses)."""
    from torchcodec.decoders import get_container_metadata

    index = get_container_metadata(os.fspath(path)).best_video_stream_index
    if index is None:
        raise VidsslError(f"{path}: no video stream")
    return int(index)


def _read_ppm_stream(data: bytes) -> np.ndarray:
    """Frames of a ``-f image2pipe -c:v ppm`` stream (binary P6, maxval 255)."""
    frames, pos = [], 0
    while pos < len(data):
        fields: list[bytes] = []
        while len(fields) < 4:  # magic, width, height, maxval, separated by whitespace
            while data[pos:pos + 1].isspace():
                pos += 1
            end = pos
            while not data[end:end + 1].isspace():
                end += 1
            fields.append(data[pos:end])
            pos = end
        pos += 1  # the single whitespace byte before the raster
        if fields[0] != b"P6" or fields[3] != b"255":
            raise VidsslError(f"unexpected ppm header {fields!r}")
        w, h = int(fields[1]), int(fields[2])
        frames.append(np.frombuffer(data, np.uint8, w * h * 3, pos).reshape(h, w, 3))
        pos += w * h * 3
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def reference(path: str | os.PathLike) -> Reference:
    """Decode ``path`` sequentially with the ``ffmpeg`` command line (the contract's reference)."""
    path = os.fspath(path)
    stream = best_video_stream(path)
    raw = _run([ffmpeg_path(), "-nostdin", "-v", "error", "-i", path, "-map", f"0:{stream}",
                "-fps_mode", "passthrough", "-f", "image2pipe", "-c:v", "ppm",
                "-pix_fmt", "rgb24", "-"])
    frames = _read_ppm_stream(raw)
    info = _ffprobe_json(path, "-select_streams", str(stream), "-show_streams",
                         "-show_entries", "stream=pix_fmt")["streams"][0]
    high = any(t in info.get("pix_fmt", "") for t in ("p10", "p12", "p14", "p16"))
    packets = _packets(Path(path), str(stream))
    timed = bool(packets) and all(p.get("pts") is not None for p in packets)
    if not timed:  # no presentation timestamps: the sequential count is the numbering; the
        # container may list more frames than decode (a packet without a picture): those last
        # positions are holes
        expected = np.arange(max(len(frames), len(packets)))
        expected[len(frames):] = -1
    else:  # numbered by presentation position; a packet that yields no frame is a hole
        shown = _ffprobe_json(path, "-select_streams", str(stream), "-show_frames",
                              "-show_entries", "frame=best_effort_timestamp")["frames"]
        if len(shown) != len(frames):
            raise VidsslError(f"{path}: ffprobe shows {len(shown)} frames, ffmpeg decoded "
                              f"{len(frames)}")
        row = {int(f["best_effort_timestamp"]): i for i, f in enumerate(shown)}
        positions = sorted(int(p["pts"]) for p in packets if "D" not in p.get("flags", ""))
        expected = np.array([row.get(p, -1) for p in positions], dtype=np.int64)
        if sorted(int(r) for r in expected if r >= 0) != list(range(len(frames))):
            raise VidsslError(f"{path}: decoded frames do not match packet timestamps")
    return Reference(frames, stream, np.asarray(expected, dtype=np.int64), high)


# ----------------------------------------------------------------------------- the checker --

@dataclass
class Outcome:
    """How one backend did on one file.

    ``status``: ``"exact"`` (pixel-equal everywhere), ``"tolerance"`` (high bit depth, within
    :data:`HIGH_BIT_DEPTH_TOLERANCE`), ``"refused"`` (``VideoDecodeError`` at open; ``message``
    holds it), ``"partial"`` (it opened, every frame it returned was right, but some requests
    were refused with ``VideoDecodeError``: ``refusals``), or ``"wrong"`` (a wrong frame, size or
    count, or a hole answered with a frame: ``problems``).
    """

    kind: str
    backend: str
    status: str
    max_diff: int = 0
    message: str = ""
    problems: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def settle(self) -> "Outcome":
        """Set ``status`` from what the checks found (an opened file starts ``"exact"``)."""
        if self.problems:
            self.status = "wrong"
        elif self.refusals:
            self.status = "partial"
        elif self.max_diff:
            self.status = "tolerance"
        return self

    @property
    def passed(self) -> bool:
        """Never a wrong frame (refusals are judged by the caller, per backend and kind)."""
        return self.status != "wrong"

    @property
    def cell(self) -> str:
        """The conformance-table cell."""
        if self.status == "exact":
            return "exact"
        if self.status == "tolerance":
            return f"tolerance (max {self.max_diff})"
        if self.status == "refused":
            return f"refused: {self.message}"
        if self.status == "partial":
            return "partial: " + self.refusals[0]
        return "WRONG: " + "; ".join(self.problems[:2])


def request_plan(n: int, holes: Sequence[int], seed: int = 0) -> list[list[int]]:
    """Index lists a backend must answer: the whole file in order, random with repeats and out of
    order, reversed, the last frames, and single frames in random order (holes left out)."""
    rng = np.random.default_rng(seed)
    good = np.array([i for i in range(n) if i not in set(holes)], dtype=np.int64)
    if len(good) == 0:
        return []
    plan = [good.tolist()]
    plan.append(rng.choice(good, size=min(16, 2 * len(good))).tolist())
    plan.append(sorted(rng.choice(good, size=min(8, len(good)), replace=False).tolist(),
                       reverse=True))
    plan.append(good[-5:].tolist())
    plan.append(good[max(0, len(good) // 2 - 8):len(good) // 2 + 8:2].tolist())
    return plan


def check_backend(path: str | os.PathLike, backend: str, ref: Reference, kind: str = "",
                  seed: int = 0) -> Outcome:
    """Hold ``backend`` to ``ref`` on ``path``: metadata, every request of :func:`request_plan`
    on one decoder, single frames in random order on the same decoder and on fresh ones, and
    (where the file has a hole) that reading the hole raises ``VideoDecodeError``. Where the
    backend's :func:`~vidssl.data.decoders.probe_video` verifies seeking in a file it otherwise
    counts (``seek_token``, what an index hands the loader), both ways of reading are checked."""
    from vidssl.data.decoders import probe_video
    from vidssl.errors import VideoDecodeError

    path = os.fspath(path)
    out = Outcome(kind or Path(path).stem, backend, "exact")
    try:
        token = probe_video(path, backend).seek_token
    except VideoDecodeError as err:
        out.status, out.message = "refused", err.reason
        return out
    _check_reads(path, backend, ref, out, seed, {})
    if out.status == "refused":
        return out
    if token:
        _check_reads(path, backend, ref, out, seed + 1, {"verified_seek": token},
                     "(seeking verified) ")
    return out.settle()


def _check_reads(path: str, backend: str, ref: Reference, out: Outcome, seed: int,
                 kwargs: dict, label: str = "") -> None:
    from vidssl.data.decoders import open_video
    from vidssl.errors import VideoDecodeError

    tol = HIGH_BIT_DEPTH_TOLERANCE if ref.high_bit_depth else 0
    try:
        dec = open_video(path, backend, **kwargs)
    except VideoDecodeError as err:
        if not kwargs:
            out.status, out.message = "refused", err.reason
        else:
            out.problems.append(f"{label}open: {err.reason}")
        return
    holes = [k for k, r in enumerate(ref.expected) if r < 0]
    rng = np.random.default_rng(seed)
    h, w = ref.frames.shape[1:3]

    def compare(indices: Sequence[int], frames, how: str) -> None:
        how = label + how
        got = frames.permute(0, 2, 3, 1).numpy()
        for k, frame in zip(indices, got):
            want = ref.frames[ref.expected[k]]
            if frame.shape != want.shape:
                out.problems.append(f"{how}: frame {k} has shape {frame.shape}, expected "
                                    f"{want.shape}")
                return
            diff = int(np.abs(frame.astype(np.int16) - want.astype(np.int16)).max())
            out.max_diff = max(out.max_diff, diff)
            if diff > tol:
                out.problems.append(f"{how}: frame {k} {describe_mismatch(frame, ref)}")
                return

    with dec:
        meta = dec.metadata
        if meta.num_frames != ref.num_frames:
            out.problems.append(f"num_frames {meta.num_frames}, expected {ref.num_frames}")
        if (meta.height, meta.width) != (h, w):
            out.problems.append(f"size {meta.width}x{meta.height}, expected {w}x{h}")
        for indices in request_plan(ref.num_frames, holes, seed):
            try:
                compare(indices, dec.get_frames(indices), f"{len(indices)} frames")
            except VideoDecodeError as err:
                out.refusals.append(f"{label}get_frames of {len(indices)} frames: {err.reason}")
        good = [k for k in range(ref.num_frames) if k not in set(holes)]
        for k in rng.permutation(good)[:6].tolist():
            try:
                compare([k], dec.get_frames([k]), "single frame")
            except VideoDecodeError as err:
                out.refusals.append(f"{label}single frame {k}: {err.reason}")
        for k in holes:
            try:
                dec.get_frames([k])
                out.problems.append(f"{label}hole {k} (an undecodable packet) returned a frame")
            except VideoDecodeError:
                pass
    for k in rng.permutation(good)[:3].tolist():
        try:
            with open_video(path, backend, **kwargs) as fresh:
                compare([k], fresh.get_frames([k]), "fresh decoder")
        except VideoDecodeError as err:
            out.refusals.append(f"{label}fresh decoder, frame {k}: {err.reason}")


def describe_mismatch(frame: np.ndarray, ref: Reference) -> str:
    """``"is reference frame j"`` when it equals another frame, else its smallest difference."""
    diffs = np.abs(ref.frames.astype(np.int16) - frame.astype(np.int16)).reshape(
        len(ref.frames), -1).max(axis=1)
    j = int(diffs.argmin())
    rows = np.flatnonzero(ref.expected == j)
    at = int(rows[0]) if len(rows) else j
    if diffs[j] == 0:
        return f"is the reference's frame {at}"
    return f"differs from every reference frame (closest: frame {at}, max diff {int(diffs[j])})"


def conformance_table(outcomes: Sequence[Outcome], backends: Sequence[str]) -> str:
    """Markdown table: file kind x backend."""
    by = {(o.kind, o.backend): o for o in outcomes}
    kinds = list(dict.fromkeys(o.kind for o in outcomes))
    lines = ["| file kind | " + " | ".join(backends) + " |",
             "|---|" + "---|" * len(backends)]
    for kind in kinds:
        desc = KINDS_BY_NAME[kind].description if kind in KINDS_BY_NAME else kind
        cells = [by[(kind, b)].cell if (kind, b) in by else "n/a" for b in backends]
        lines.append(f"| `{kind}`: {desc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ the libraries, as such --

class _RawTorchCodec:
    """torchcodec's ``VideoDecoder`` as a user calls it (exact seek mode, ``get_frames_at``)."""

    def __init__(self, path: str):
        from torchcodec.decoders import VideoDecoder

        self._dec = VideoDecoder(path, seek_mode="exact", dimension_order="NCHW")
        self.num_frames = int(self._dec.metadata.num_frames or 0)

    def get_frames(self, indices: Sequence[int]):
        return self._dec.get_frames_at([int(i) for i in indices]).data


class _RawDecord:
    """decord's ``VideoReader.get_batch`` as a user calls it."""

    def __init__(self, path: str):
        import decord
        import torch

        self._torch = torch
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        self.num_frames = len(self._vr)

    def get_frames(self, indices: Sequence[int]):
        batch = self._vr.get_batch([int(i) for i in indices]).asnumpy()
        return self._torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)


RAW_LIBRARIES: dict[str, Callable[[str], object]] = {"torchcodec": _RawTorchCodec,
                                                      "decord": _RawDecord}


def check_raw(path: str | os.PathLike, library: str, ref: Reference, kind: str = "",
              seed: int = 0) -> Outcome:
    """What the library itself returns for the same requests (no vidssl in between): the
    upstream behaviour vidssl's backends correct. Exceptions count as refusals."""
    path = os.fspath(path)
    out = Outcome(kind or Path(path).stem, f"raw {library}", "exact")
    tol = HIGH_BIT_DEPTH_TOLERANCE if ref.high_bit_depth else 0
    try:
        dec = RAW_LIBRARIES[library](path)
    except Exception as err:  # noqa: BLE001 - the library's own words
        from vidssl.data.decoders.base import one_line

        out.status, out.message = "refused", one_line(err).split(" Stack trace")[0][:160]
        return out
    if dec.num_frames != ref.num_frames:
        out.problems.append(f"num_frames {dec.num_frames}, expected {ref.num_frames}")
    holes = [k for k, r in enumerate(ref.expected) if r < 0]
    plans = request_plan(min(ref.num_frames, dec.num_frames), holes, seed)
    good = [k for k in range(min(ref.num_frames, dec.num_frames)) if k not in set(holes)]
    plans += [[k] for k in np.random.default_rng(seed).permutation(good)[:6].tolist()]
    for indices in plans:
        try:
            frames = dec.get_frames(indices).permute(0, 2, 3, 1).numpy()
        except Exception as err:  # noqa: BLE001
            from vidssl.data.decoders.base import one_line

            out.refusals.append(f"{len(indices)} frames: {one_line(err)[:160]}")
            continue
        for k, frame in zip(indices, frames):
            want = ref.frames[ref.expected[k]]
            if frame.shape != want.shape:
                out.problems.append(f"frame {k} has shape {frame.shape}, expected {want.shape}")
                break
            diff = int(np.abs(frame.astype(np.int16) - want.astype(np.int16)).max())
            out.max_diff = max(out.max_diff, diff)
            if diff > tol:
                out.problems.append(f"frame {k} {describe_mismatch(frame, ref)}")
                break
    return out.settle()


def run_conformance(directory: str | os.PathLike, backends: Sequence[str] | None = None,
                    raw: Sequence[str] = ("torchcodec", "decord"),
                    progress: Callable[[str], None] | None = None) -> dict:
    """Write every kind into ``directory``, decode it with the command line, and check every
    backend (and each raw library in ``raw`` that is installed). Returns a JSON-able dict."""
    from vidssl.data.decoders import available_decoders

    backends = list(backends or available_decoders())
    raw = [lib for lib in raw if _importable(lib)]
    outcomes: list[Outcome] = []
    skipped: dict[str, str] = {}
    for kind in KINDS:
        try:
            path = write_kind(kind, directory)
        except ToolMissing as err:
            skipped[kind.name] = str(err)
            continue
        ref = reference(path)
        for backend in backends:
            outcomes.append(check_backend(path, backend, ref, kind.name))
        for lib in raw:
            outcomes.append(check_raw(path, lib, ref, kind.name))
        if progress:
            progress(f"{kind.name}: " + ", ".join(f"{o.backend} {o.status}" for o in outcomes
                                                   if o.kind == kind.name))
    columns = backends + [f"raw {lib}" for lib in raw]
    return {
        "benchmark": "decode_conformance",
        "columns": columns,
        "tolerance_high_bit_depth": HIGH_BIT_DEPTH_TOLERANCE,
        "outcomes": [{"kind": o.kind, "backend": o.backend, "status": o.status,
                      "max_diff": o.max_diff, "message": o.message,
                      "problems": o.problems[:3], "refusals": o.refusals[:3], "cell": o.cell}
                     for o in outcomes],
        "skipped": skipped,
        "table": conformance_table(outcomes, columns),
    }


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
