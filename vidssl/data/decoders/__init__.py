"""Video decoders behind one protocol: frame indices in, ``uint8 (T, C, H, W)`` out."""

from vidssl.data.decoders.base import (
    DECODERS,
    DEFAULT_BACKEND,
    DEFAULT_MAX_FRAME_PIXELS,
    FrameDecodeError,
    VideoDecoder,
    VideoMeta,
    available_decoders,
    decoder_class,
    decoder_device,
    list_decoders,
    open_video,
    probe_video,
    register_decoder,
)

__all__ = [
    "DECODERS",
    "DEFAULT_BACKEND",
    "DEFAULT_MAX_FRAME_PIXELS",
    "FrameDecodeError",
    "VideoDecoder",
    "VideoMeta",
    "available_decoders",
    "decoder_class",
    "decoder_device",
    "list_decoders",
    "open_video",
    "probe_video",
    "register_decoder",
]
