"""Memory soak benchmark (same as `vidssl bench soak`).

    python benchmarks/soak.py [--clips 10000] [--records 1000000] [--workers 8] [--backends ...]

(1) RSS over --clips decoded clips per backend through ClipDataset, slope after warm-up;
(2) a --records-record index: build/save/load time and the memory of --workers DataLoader
workers reading it, against the same records as a Python list of dicts. Writes
benchmarks/results/soak.{json,md}. Generates the synthetic dataset first if --root is missing.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.cli import bench_on_synthetic  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_on_synthetic("soak", sys.argv[1:]))
