"""How a file's frames are numbered, decided once per file for every backend.

Frame ``k`` is the ``k``-th frame a sequential decode yields (``docs/decoding.md``, "The
contract"). Decoders reach frame ``k`` faster by seeking, and a seek lands on a *timestamp*, so a
backend may only seek where the frames' timestamps say truthfully where each frame sits in
presentation order. Two numberings follow:

* ``"pts"``: the container carries presentation timestamps (MP4/MOV, Matroska/WebM, MPEG-TS/PS,
  FLV, Ogg, IVF, NUT) or the stream does not reorder frames: frame ``k`` is the packet with the
  ``k``-th smallest presentation timestamp, reachable by seeking to the keyframe before it.
* ``"count"``: the container has no presentation timestamps (AVI, raw elementary streams) *and*
  the decoder reorders frames (B-frames, packed B-frames): the timestamps FFmpeg puts on decoded
  frames are then those of the packet that happened to release each frame, shifted by the
  reorder delay (torchcodec returned frame ``k - 1`` for ``k``, decord frames from another GOP).
  Frame ``k`` can only be found by counting the frames a decode from the start of the stream
  yields, which is what the backends then do.

:func:`frame_numbering` tells them apart without a library-specific rule: a timestamped container
is recognised from its first bytes; anything else is decoded from its start (with torchcodec's
demuxer and packet decoder, torchcodec >= 0.17; with an older torchcodec such files are counted
when PyAV reports B-frames or cannot tell) until up to :data:`CHECK_FRAMES` frames come out,
and numbered ``"pts"`` only if every one of those frames carries exactly the timestamp its
position in the packet scan predicts. The answer is memoised per (path, size, mtime) in the
process, so a DataLoader worker decides once per file. :func:`reorders` answers the narrower
question decord needs (its own random access is exact only on streams that do not reorder).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

PTS = "pts"
COUNT = "count"
CHECK_FRAMES = 12

# First bytes of containers whose packets carry presentation timestamps.
_TIMESTAMPED = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),
    (4, b"pnot"),                      # MP4 / MOV / 3GP
    (0, b"\x1a\x45\xdf\xa3"),          # EBML: Matroska, WebM
    (0, b"\x00\x00\x01\xba"),          # MPEG program stream
    (0, b"FLV"), (0, b"OggS"), (0, b"DKIF"), (0, b"nut/multimedia container"),
)


def _timestamped_container(head: bytes) -> bool:
    if any(head[at:at + len(magic)] == magic for at, magic in _TIMESTAMPED):
        return True
    # MPEG-TS: a 0x47 sync byte every 188 bytes (or 192 for M2TS)
    return (len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47) or (
        len(head) >= 389 and head[4] == 0x47 and head[196] == 0x47)


@dataclass(frozen=True)
class _Key:
    path: str
    size: int
    mtime_ns: int


def _key(path: str) -> _Key | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _Key(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def file_token(path: str | os.PathLike) -> int:
    """A non-zero 63-bit number identifying ``path``'s current size and modification time (0
    when it cannot be read): what a verification about the file's bytes is valid for."""
    key = _key(os.fspath(path))
    if key is None:
        return 0
    digest = hashlib.blake2b(f"{key.size}:{key.mtime_ns}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1


def frame_numbering(path: str | os.PathLike) -> str:
    """``"pts"`` or ``"count"`` for ``path`` (see the module docstring)."""
    key = _key(os.fspath(path))
    if key is None:
        return PTS  # unreadable: the backend reports why when it opens the file
    return _numbering(key)[0]


def release_delay(path: str | os.PathLike) -> int | None:
    """For a ``"count"`` file: by how many packets (in the packet scan's order) the timestamp
    FFmpeg puts on decoded frame ``k`` is ahead of ``k``, if that was constant over the first
    :data:`CHECK_FRAMES` frames (frame ``k`` carries the timestamp of the packet that released
    it, ``k + delay`` in scan order); ``None`` otherwise or for ``"pts"`` files. The torchcodec
    backend uses it to seek in MPEG-4 part 2 AVI files (docs/decoding.md)."""
    key = _key(os.fspath(path))
    return None if key is None else _numbering(key)[1]


@functools.lru_cache(maxsize=65536)
def _numbering(key: _Key) -> tuple[str, int | None]:
    try:
        with open(key.path, "rb") as f:
            head = f.read(400)
    except OSError:
        return PTS, None
    if _timestamped_container(head):
        return PTS, None
    on_time, delay = _first_frames(key.path)
    return (PTS, None) if on_time else (COUNT, delay)


def blocks_available() -> bool:
    """Whether torchcodec has its demuxer / packet-decoder blocks (torchcodec >= 0.17)."""
    try:
        from torchcodec.decoders import ColorConverter, Demuxer  # noqa: F401
    except ImportError:
        return False
    return True


def open_av(av, path: str):
    """``av.open(path)`` that tolerates metadata strings which are not UTF-8: PyAV up to 18
    raises on them unless ``metadata_errors="ignore"``; PyAV 19 removed that argument."""
    try:
        return av.open(path, metadata_errors="ignore")
    except TypeError as err:
        if "metadata_errors" not in str(err):
            raise
        return av.open(path)


def _pyav_reorders(path: str) -> bool:
    """Without torchcodec's blocks: whether the stream has B-frames, as PyAV's codec context
    reports it (a codec property, the same whatever FFmpeg decodes it); ``True`` (the safe
    answer) when PyAV is missing or cannot tell. Timestamps are not compared here: PyAV bundles
    another FFmpeg than the system's (FFmpeg 8 stamps unpacked MPEG-4 B-frames in AVI right,
    5.1 does not), so its frames cannot stand in for torchcodec's."""
    try:
        import av

        with open_av(av, path) as container:
            stream = container.streams.best("video") or container.streams.video[0]
            return bool(stream.codec_context.has_b_frames)
    except Exception:  # noqa: BLE001
        return True


def _first_frames(path: str) -> tuple[bool, int | None]:
    """Decode the stream's first frames and compare their timestamps with the packet scan:
    ``(all on time, constant release delay or None)``."""
    if not blocks_available():  # no B-frames: nothing to reorder, timestamps hold
        return not _pyav_reorders(path), None
    try:
        from torchcodec.decoders import Demuxer

        demuxer = Demuxer(path)
        stream = demuxer.streams[0]
        scan = stream.scan()
        expected = scan.pts_seconds.tolist()
        decoder = stream.make_decoder(device="cpu", num_ffmpeg_threads=1)
        got: list[float] = []
        for packet in demuxer:
            try:
                got += [f.pts_seconds for f in decoder.decode(packet)]
            except RuntimeError:
                return False, None  # a packet the decoder refuses this early: count, to be safe
            if len(got) >= CHECK_FRAMES:
                break
        else:
            got += [f.pts_seconds for f in decoder.drain()]
    except Exception:  # noqa: BLE001 - cannot tell: counting is exact whatever the stream
        return False, None
    got = got[:CHECK_FRAMES]
    if not got:
        return False, None
    if got == expected[:len(got)]:
        return True, None
    position = {p: i for i, p in enumerate(expected)}
    delays = {position.get(stamp, -10**9) - k for k, stamp in enumerate(got)}
    delay = delays.pop() if len(delays) == 1 else None
    return False, (delay if delay is not None and delay >= 0 else None)


@functools.lru_cache(maxsize=65536)
def _reorders(key: _Key) -> bool:
    if not blocks_available():
        return _pyav_reorders(key.path)
    try:
        from torchcodec.decoders import Demuxer

        demuxer = Demuxer(key.path)
        decoder = demuxer.streams[0].make_decoder(device="cpu", num_ffmpeg_threads=1)
        for fed, packet in enumerate(demuxer, 1):
            try:
                frames = decoder.decode(packet)
            except RuntimeError:
                continue
            if frames:  # a decoder that reorders holds the first frame back
                return fed > 1
            if fed >= 32:
                break
    except Exception:  # noqa: BLE001 - cannot tell: assume it does (the safe answer)
        return True
    return True


def reorders(path: str | os.PathLike) -> bool:
    """Whether the decoder of ``path``'s best video stream holds frames back to reorder them
    (B-frames): the first frame comes out only after later packets were fed. Memoised like
    :func:`frame_numbering`; ``True`` when it cannot tell."""
    key = _key(os.fspath(path))
    return True if key is None else _reorders(key)
