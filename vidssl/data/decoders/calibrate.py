"""``decoder: auto``: pick the decoder from a short timing of the first clips of the run.

GPU decoding is not always faster: at UCF101's 320x240, creating an NVDEC session per clip can
cost more than decoding the clip on a CPU core, and CPU decoders run in parallel DataLoader
workers while a GPU decoder runs in the training process. So the choice is measured: every
available candidate decodes the same first ``samples`` clips of the run (two interleaved rounds,
the faster round counts), a CPU backend's rate is multiplied by the number of worker processes
that will run it (at most this rank's share of the node's usable CPUs: an approximation that
ignores memory bandwidth), and the fastest wins. A candidate that needed the fallback decoder or
skipped a clip during timing is not a candidate (its time would be another decoder's). The timings and the reason are logged and returned.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from vidssl.data.decoders.base import available_decoders, decoder_device
from vidssl.errors import VidsslError

log = logging.getLogger("vidssl.data")


def cpus_per_process() -> int:
    """CPUs this process may use (affinity), shared with the other ranks on this node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


@dataclass
class DecoderChoice:
    """What ``choose_decoder`` measured. ``rates``: effective clips/s per candidate;
    ``single``: clips/s of one decoder instance; ``reason``: one line for the log."""

    decoder: str
    rates: dict[str, float] = field(default_factory=dict)
    single: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def choose_decoder(make_dataset, *, device: str = "cpu", num_workers: int = 0, samples: int = 8,
                   candidates: list[str] | None = None) -> DecoderChoice:
    """Time each candidate on the same first ``samples`` clips and return the fastest.

    Args:
        make_dataset: ``backend name -> ClipDataset`` (same index, sampler and seed for all).
        device: the training device type; GPU decoders are candidates only on ``"cuda"``.
        num_workers: DataLoader workers a CPU decoder would run in (0 = the main process).
        candidates: restrict to these backends (default: every available one).
    """
    if candidates is None:
        candidates = available_decoders("cpu") + (available_decoders("cuda") if device == "cuda" else [])
    if not candidates:
        raise VidsslError("decoder auto: no decoder backend is available (install torchcodec)")
    datasets = {name: make_dataset(name) for name in candidates}
    n = min(samples, min(len(d) for d in datasets.values()))
    best_time: dict[str, float] = {}
    failed: dict[str, str] = {}
    for _ in range(2):
        for name, ds in datasets.items():
            if name in failed:
                continue
            start = time.perf_counter()
            helped = 0
            try:
                for i in range(n):
                    sample = ds[i]
                    if decoder_device(name) == "cuda":  # count the GPU work, not its launch
                        import torch

                        torch.cuda.synchronize()
                    helped += len(sample.get("fallbacks", ())) + len(sample.get("skipped", ()))
                    del sample
            except VidsslError as err:
                failed[name] = str(err)
                continue
            if helped:  # timed someone else's decoding (the fallback) or fewer clips: not a rate
                failed[name] = f"{helped} of {n} clips needed the fallback decoder or were skipped"
                continue
            best_time[name] = min(best_time.get(name, float("inf")), time.perf_counter() - start)
    if not best_time:
        raise VidsslError("decoder auto: every candidate failed: " +
                          "; ".join(f"{k}: {v}" for k, v in failed.items()))
    parallel = max(1, min(num_workers, cpus_per_process()))
    single = {k: n / max(t, 1e-9) for k, t in best_time.items()}
    rates = {k: r * (parallel if decoder_device(k) == "cpu" else 1) for k, r in single.items()}
    winner = max(rates, key=rates.get)
    shown = ", ".join(f"{k} {rates[k]:.0f}" + (f" ({single[k]:.0f} x {parallel} workers)"
                                               if decoder_device(k) == "cpu" and parallel > 1 else "")
                      for k in sorted(rates, key=rates.get, reverse=True))
    reason = f"decoder auto: {shown} clips/s over the first {n} clips -> {winner}"
    if failed:
        reason += " (failed: " + ", ".join(failed) + ")"
    log.info(reason)
    return DecoderChoice(winner, rates, single, failed, reason)
