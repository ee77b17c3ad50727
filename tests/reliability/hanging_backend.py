"""A test decoder backend: torchcodec, except that reading frames of any file whose name
contains ``hang`` blocks (as a decoder stuck on a stalled network mount would). Registered by
the tests that need it, never by vidssl."""

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
