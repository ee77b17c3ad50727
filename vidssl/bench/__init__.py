"""Benchmarks behind ``vidssl bench ...``; ``benchmarks/*.py`` are thin scripts over them."""

from __future__ import annotations

import os


def run_on_synthetic(benchmark: str, argv: list[str]) -> int:
    """``vidssl bench BENCHMARK ARGV``, writing the synthetic dataset first when ``--root`` (default
    ``data/synthetic``) does not exist yet (what the ``benchmarks/*.py`` scripts do)."""
    from vidssl.cli import DEFAULT_SYNTHETIC_ROOT, main

    root = argv[argv.index("--root") + 1] if "--root" in argv[:-1] else DEFAULT_SYNTHETIC_ROOT
    if not os.path.isdir(root):
        rc = main(["make-synthetic", "--out", root])
        if rc:
            return rc
    return main(["bench", benchmark, *argv])
