"""Writers of hostile video files: each produces a real file of one troublesome kind."""

from __future__ import annotations

import fractions
import shutil
from pathlib import Path

import numpy as np
import torch

from tests.conftest import moving_pattern, write_video

# Presentation-time gaps (ms) between consecutive frames of the variable-frame-rate files.
VFR_GAPS_MS = (20, 150, 40, 33, 100, 20, 60)


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_unknown_codec(path: Path) -> Path:
    """An AVI whose video stream's FourCC no FFmpeg decoder knows (MPEG-4 'FMP4' -> 'QQQQ')."""
    tmp = path.with_name(path.stem + "_src.avi")
    write_video(tmp, num_frames=24)
    data = tmp.read_bytes()
    assert data.count(b"FMP4") >= 1
    path.write_bytes(data.replace(b"FMP4", b"QQQQ"))
    tmp.unlink()
    return path


def write_huge(path: Path, width: int = 8448, height: int = 4480) -> Path:
    """One real H.264 frame larger than DCI 8K (flat colour: ~110 kB, under a second to encode)."""
    from torchcodec.encoders import VideoEncoder

    frames = torch.full((1, 3, height, width), 90, dtype=torch.uint8)
    VideoEncoder(frames, frame_rate=8).to_file(str(path), codec="libx264",
                                                extra_options={"preset": "ultrafast"})
    return path


def write_vfr(path: Path, num_frames: int = 30, side: int = 32) -> Path:
    """H.264 with irregular frame timestamps (``VFR_GAPS_MS``) and B-frames, any container."""
    import av

    tb = fractions.Fraction(1, 1000)
    frames = moving_pattern(num_frames, side, side).permute(0, 2, 3, 1).numpy()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        stream.options = {"g": "6", "bf": "2"}
        pts = 0
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = pts, tb
            pts += VFR_GAPS_MS[i % len(VFR_GAPS_MS)]
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_all(root: Path) -> dict[str, Path]:
    """Every hostile kind under ``root`` (plus ``good``): name -> path."""
    files = {"good": write_video(root / "good.mp4", num_frames=24, gop=8)}
    files["zero"] = root / "zero.mp4"
    files["zero"].write_bytes(b"")
    files["random"] = root / "random.avi"
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(files["good"].read_bytes()[:1200])
    files["text"] = root / "notes.mp4"
    files["text"].write_text("this is not a video\n")
    files["audio_only"] = write_audio_only(root / "audio_only.mp4")
    files["unknown_codec"] = write_unknown_codec(root / "unknown_codec.avi")
    files["huge"] = write_huge(root / "huge.mp4")
    files["vfr_mp4"] = write_vfr(root / "vfr.mp4")
    files["vfr_mkv"] = write_vfr(root / "vfr.mkv")
    files["wrong_ext"] = root / "really_h264.avi"
    shutil.copy(files["good"], files["wrong_ext"])
    files["single"] = write_video(root / "single.mp4", num_frames=1, gop=1)
    files["unicode"] = root / "a dir ü" / "clip ñ 映像.mp4"
    files["unicode"].parent.mkdir()
    shutil.copy(files["good"], files["unicode"])
    return files
