"""Writing videos: uint8 frames to an ``.mp4`` (H.264) or ``.avi`` (MPEG-4 part 2) file.

The data layer's general writer, used by the synthetic dataset generator and by the optical-flow
precomputation (:func:`vidssl.models.flow.precompute_flow_videos`).
"""

from __future__ import annotations

import os

import numpy as np

from vidssl.errors import ConfigError

__all__ = ["CODECS", "encode_video"]

CODECS = {"avi": "mpeg4", "mp4": "libx264"}  # FFmpeg encoder per container


def encode_video(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Encode uint8 ``(T, H, W, 3)`` frames to ``path``: ``.mp4`` -> H.264 (crf 18), ``.avi`` ->
    MPEG-4 part 2 (quantiser 2-4), both yuv420p (so H and W must be even).

    Single-threaded and reproducible: the same frames always give the same bytes."""
    import torch
    from torchcodec.encoders import VideoEncoder

    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    if ext not in CODECS:
        raise ConfigError(f"cannot encode {path}: extension must be .avi or .mp4")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    tchw = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    encoder = VideoEncoder(tchw, frame_rate=float(fps))
    if ext == "mp4":
        # mbtree off: with it, torchcodec+libx264 output depends on the process's history
        # (measured: same frames, different bytes after other encodes); without it, bit-exact.
        encoder.to_file(str(path), codec="libx264", pixel_format="yuv420p", crf=18,
                        extra_options={"threads": 1, "x264-params": "mbtree=0"})
    else:  # "qscale" is an ffmpeg CLI alias, not an encoder option; qmin/qmax bound it instead
        encoder.to_file(str(path), codec="mpeg4", pixel_format="yuv420p",
                        extra_options={"qmin": 2, "qmax": 4, "threads": 1})
