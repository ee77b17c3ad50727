"""The memory-soak benchmark's parts (the numbers themselves: benchmarks/results/soak.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidssl.bench.soak import index_sharing, slope_per_1000, smaps_rollup, synthetic_records
from vidssl.cli import main
from vidssl.data.index.core import VideoIndex
from vidssl.errors import VidsslError


def test_slope_is_least_squares_after_warmup():
    clips = list(range(0, 10_001, 500))
    flat_then_leak = [100 * 1024 * 1024 + (0 if c < 2000 else (c - 2000) * 2048) for c in clips]
    # 2 KiB per clip after 2,000 clips = 2,000 KiB per 1,000 clips; the warm-up cut excludes
    # the flat start, so the fit is exact.
    assert slope_per_1000(clips, flat_then_leak, warmup=0.2) == pytest.approx(2000)
    assert slope_per_1000(clips, [5 * 1024 * 1024] * len(clips), warmup=0.2) == pytest.approx(0)
    with pytest.raises(VidsslError, match="too few"):
        slope_per_1000([0, 10], [1, 2], warmup=0.2)


def test_synthetic_records_make_a_valid_index():
    paths, labels, frames, fps = synthetic_records(1000)
    index = VideoIndex(paths, labels, frames, fps)
    assert len(index) == 1000 and index.path(7) == paths[7] and len(set(paths)) == 1000


def test_index_sharing_reads_the_same_records_both_ways():
    result = index_sharing(3000, workers=2, n_items=16)
    a, b = result["vidssl_index"], result["list_of_dicts"]
    assert a["checksum"] == b["checksum"] > 0  # both epochs read every record
    assert len(a["worker_uss_mib"]) == 2 and all(u > 0 for u in a["worker_uss_mib"])
    assert smaps_rollup()["Rss"] > 0


def test_bench_soak_cli_writes_results(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["bench", "soak", "--root", str(tiny_synthetic), "--clips", "40",
                 "--sample-every", "5", "--backends", "torchcodec", "--records", "2000",
                 "--workers", "2", "--out", str(out)]) == 0
    result = json.loads((out / "soak.json").read_text())
    (decode,) = result["decode"]
    assert decode["backend"] == "torchcodec" and decode["clips"] == 40
    assert np.isfinite(decode["slope_kib_per_1000_clips"])
    assert result["index"]["records"] == 2000
    assert "vidssl bench soak --root" in result["command"]
    assert "| vidssl `VideoIndex` (columns) |" in (out / "soak.md").read_text()
