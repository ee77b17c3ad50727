"""GPU pipeline benchmark (same as `vidssl bench gpu`): CPU vs NVDEC decode at 320x240 and
1280x720, and the pretraining step (R3D-18 16x112^2, ViT-B) with the real loader vs data already
on the GPU, at the largest batch that fits. Writes benchmarks/results/gpu_pipeline.{json,md}.

    python benchmarks/gpu_pipeline.py                       # on the GPU machine
    python benchmarks/gpu_pipeline.py --encoders r3d_tiny --sizes 320x240 --clips 32 \\
        --batch-sizes 8 --steps 2 --rounds 1 --stem gpu_pipeline_cpu   # CPU-only smoke run
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.cli import bench_on_synthetic  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_on_synthetic("gpu", sys.argv[1:]))
