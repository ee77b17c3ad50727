"""Training throughput benchmark (same as `vidssl bench train`).

    python benchmarks/train_throughput.py [--config configs/pretrain/cvrl_synthetic.yaml] [--steps 8] [--rounds 3]

Times, in one process, a pretraining step fed (a) by the real video loader and (b) by the same
batches already in memory; the ratio is the data-pipeline efficiency. Writes
benchmarks/results/train_throughput.{json,md}. Generates the synthetic dataset first if needed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.cli import bench_on_synthetic  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_on_synthetic("train", sys.argv[1:]))
