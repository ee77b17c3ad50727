"""Cross-rank gather with gradients: vidssl's ``gather_with_grad`` against PyTorch's
``torch.distributed.nn.functional.all_gather`` (the function it replaced, deprecated).

    python benchmarks/gather_with_grad.py [--rounds 7] [--iters 30]

Two gloo ranks on this machine (one thread each), one process group, interleaved rounds: per
iteration each rank gathers its ``(B, D)`` embeddings, computes an InfoNCE-style loss over the
gathered batch and backpropagates. Also checks that both give the same gradients. Writes
benchmarks/results/gather_with_grad.{json,md}: per size the median over rounds of
(baseline time / vidssl time) with its range.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.runtime import dist as vdist  # noqa: E402

SIZES = [(16, 128), (64, 128), (256, 512)]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _loss(gather, z: torch.Tensor) -> torch.Tensor:
    everyone = gather(z)
    return F.cross_entropy(z @ everyone.T / 0.1, torch.arange(z.shape[0]) + vdist.rank() * z.shape[0])


def _baseline(z: torch.Tensor) -> torch.Tensor:
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)


def _time(gather, z0: torch.Tensor, iters: int) -> float:
    torch.distributed.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        z = z0.clone().requires_grad_(True)
        _loss(gather, z).backward()
    torch.distributed.barrier()
    return time.perf_counter() - start


def _worker(rank: int, world: int, rendezvous: str, rounds: int, iters: int, out: str) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)   # the baseline's deprecation notice
    torch.distributed.init_process_group("gloo", init_method="file://" + rendezvous, rank=rank,
                                         world_size=world)
    try:
        rows = []
        for b, d in SIZES:
            z0 = F.normalize(torch.randn(b, d, generator=torch.Generator().manual_seed(rank)), dim=1)
            grads = []
            for gather in (vdist.gather_with_grad, _baseline):
                z = z0.clone().requires_grad_(True)
                _loss(gather, z).backward()
                grads.append(z.grad)
            same = bool(torch.allclose(grads[0], grads[1], atol=1e-6))
            _time(vdist.gather_with_grad, z0, 3), _time(_baseline, z0, 3)   # warm-up
            ratios, ours, base = [], [], []
            for _ in range(rounds):
                t_ours = _time(vdist.gather_with_grad, z0, iters)
                t_base = _time(_baseline, z0, iters)
                ours.append(t_ours / iters * 1e3)
                base.append(t_base / iters * 1e3)
                ratios.append(t_base / t_ours)
            rows.append({"batch_per_rank": b, "dim": d, "same_gradients": same,
                         "ms_per_iter_vidssl": statistics.median(ours),
                         "ms_per_iter_baseline": statistics.median(base),
                         "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios)})
        if rank == 0:
            with open(out, "w", encoding="utf-8") as f:
                json.dump(rows, f)
    finally:
        torch.distributed.destroy_process_group()


def main(argv: list[str]) -> int:
    import argparse

    import torch.multiprocessing as mp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=30)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "rows.json")
        mp.start_processes(_worker, args=(2, os.path.join(tmp, "rendezvous"), a.rounds, a.iters, raw),
                           nprocs=2, start_method="spawn")
        with open(raw, encoding="utf-8") as f:
            rows = json.load(f)
    os.makedirs(RESULTS, exist_ok=True)
    meta = {"world_size": 2, "backend": "gloo", "rounds": a.rounds, "iters": a.iters,
            "torch": torch.__version__, "rows": rows}
    with open(os.path.join(RESULTS, "gather_with_grad.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    lines = ["# Gather with gradients across ranks (2 gloo ranks, CPU, one thread each)", "",
             f"Per iteration: gather `(B, D)` from both ranks, InfoNCE-style loss, backward. "
             f"{a.rounds} interleaved rounds of {a.iters} iterations; ratio = baseline time / vidssl "
             "time (> 1: vidssl faster). Baseline: `torch.distributed.nn.functional.all_gather` "
             f"(deprecated). torch {torch.__version__}.", "",
             "| B per rank | D | same gradients | vidssl ms/iter | baseline ms/iter | ratio, median [min, max] |",
             "|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['batch_per_rank']} | {r['dim']} | {r['same_gradients']} | "
                     f"{r['ms_per_iter_vidssl']:.2f} | {r['ms_per_iter_baseline']:.2f} | "
                     f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] |")
    with open(os.path.join(RESULTS, "gather_with_grad.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["same_gradients"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
