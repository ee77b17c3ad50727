"""Benchmarks behind ``vidssl bench ...``; ``benchmarks/*.py`` are thin scripts over the CLI
(:func:`vidssl.cli.bench_on_synthetic`)."""
