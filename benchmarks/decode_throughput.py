"""Decode throughput benchmark (same as `vidssl bench decode`).

    python benchmarks/decode_throughput.py [--root data/synthetic] [--clips 96] [--rounds 5]

Times, in one process and on the same clips: (a) raw torchcodec `get_frames_at` on the sampled
indices (the floor), (b) the vidssl loader with each installed backend, (c) pytorchvideo's
`EncodedVideo.get_clip`. Writes benchmarks/results/decode_throughput.{json,md}. Generates the
synthetic dataset first if --root does not exist.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.cli import bench_on_synthetic  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_on_synthetic("decode", sys.argv[1:]))
