"""Test decoder backends, registered by the tests that need them, never by vidssl:
``HangingDecoder`` is torchcodec, except that reading frames of any file whose name contains
``hang`` blocks (as a decoder stuck on a stalled network mount would); ``RefusingDecoder`` cannot
open files whose name contains ``odd`` (as NVDEC refuses a codec it lacks)."""

from __future__ import annotations

import os
import time

from vidssl.data.decoders.torchcodec_backend import TorchCodecDecoder

HANG_SECONDS = 600.0


class HangingDecoder(TorchCodecDecoder):
    backend = "hang_test"

    def get_frames(self, indices):
        if "hang" in os.path.basename(self.path):
            time.sleep(HANG_SECONDS)
        return super().get_frames(indices)


class RefusingDecoder(TorchCodecDecoder):
    backend = "refusing_test"

    def __init__(self, path: str, **kwargs):
        if "odd" in os.path.basename(path):
            from vidssl.errors import VideoDecodeError

            raise VideoDecodeError(path, "codec not supported by this decoder")
        super().__init__(path, **kwargs)
