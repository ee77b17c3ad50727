"""Training throughput: a pretraining step fed by the real loader vs by batches already in memory.

Both contenders run the same method, model and optimizer in one process, in interleaved rounds
of ``steps`` optimizer steps (order rotated each round). The in-memory contender replays batches
taken from the same loader and already moved to the device, so the work per step is identical; the ratio (in-memory time over
loader time, median over rounds) is the data-pipeline efficiency: 1.0 means the loader never
makes the step wait.
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Callable, Iterator

import torch

from vidssl.bench.decode import environment
from vidssl.data.dataset import set_loader_epoch
from vidssl.data.dataset import batch_to_device as to_device
from vidssl.runtime.device import autocast_dtype, resolve_device
from vidssl.runtime.optim import build_optimizer, build_scheduler
from vidssl.train.config import PretrainConfig
from vidssl.train.loop import build_components, train_step


def _epochs(loader) -> Iterator[dict]:
    for epoch in itertools.count():
        set_loader_epoch(loader, epoch)
        yield from loader


def run_train_benchmark(cfg: PretrainConfig, *, steps: int = 8, rounds: int = 3,
                        warmup: int = 2, progress: Callable[[str], None] | None = None) -> dict:
    """Clips/s of ``cfg``'s pretraining step with the real loader and with in-memory batches."""
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device, key="train.device")
    _, method, loader = build_components(cfg, device)
    optimizer = build_optimizer(method, cfg.optim, device)
    total = (rounds * 2 + 1) * steps + warmup
    scheduler = build_scheduler(optimizer, total, cfg.optim.warmup_steps)
    amp = autocast_dtype(cfg.train.amp, device, key="train.amp")
    step_count = [0]

    def one_step(batch: dict) -> int:
        batch = to_device(batch, device)
        train_step(method, method, batch, optimizer, scheduler, clip_grad=cfg.optim.clip_grad,
                   amp_dtype=amp, step=step_count[0], total=total)
        step_count[0] += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        return batch["views"][0].shape[0]

    stream = _epochs(loader)
    method.train()
    # The in-memory contender's batches, already on the device (no copy inside its steps).
    memory = [to_device(next(stream), device) for _ in range(steps)]
    for batch in memory[:warmup]:
        one_step(batch)
    contenders: dict[str, Callable[[], int]] = {
        "loader": lambda: sum(one_step(next(stream)) for _ in range(steps)),
        "in_memory": lambda: sum(one_step(b) for b in memory),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    clips: dict[str, int] = {k: 0 for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % 2:] + names[: r % 2]:
            t0 = time.perf_counter()
            clips[name] += contenders[name]()
            times[name].append(time.perf_counter() - t0)
        if progress:
            progress(f"round {r + 1}/{rounds}: loader {times['loader'][-1]:.2f} s, "
                     f"in-memory {times['in_memory'][-1]:.2f} s")
    ratio = statistics.median(m / ld for m, ld in zip(times["in_memory"], times["loader"]))
    return {
        "method": cfg.method.name, "encoder": cfg.encoder.name, "encoder_kwargs": dict(cfg.encoder.kwargs),
        "batch_size": cfg.data.batch_size, "num_workers": cfg.data.num_workers,
        "device": str(device), "steps_per_round": steps, "rounds": rounds,
        "clip_shape": list(memory[0]["views"][0].shape[1:]), "views": len(memory[0]["views"]),
        "clips_per_s": {k: clips[k] / sum(times[k]) for k in contenders},
        "seconds": times, "efficiency": ratio, "environment": environment(),
    }


def to_markdown(result: dict) -> str:
    c = result["clips_per_s"]
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted(result.get("encoder_kwargs", {}).items()))
    encoder = f"{result['encoder']}({kwargs})" if kwargs else result["encoder"]
    return "\n".join([
        f"# Training throughput ({result['method']}, {encoder}, {result['device']})", "",
        f"Batch {result['batch_size']} clips x {result['views']} views of "
        f"{tuple(result['clip_shape'])} (T, C, H, W), {result['num_workers']} loader workers, "
        f"{result['rounds']} interleaved rounds of {result['steps_per_round']} steps.", "",
        "| feed | clips/s |", "|---|---:|",
        f"| real loader | {c['loader']:.1f} |", f"| batches in memory | {c['in_memory']:.1f} |", "",
        f"Data-pipeline efficiency (median over rounds of in-memory time / loader time): "
        f"**{result['efficiency']:.3f}**", "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["environment"].get("versions", {}).items()),
        ""])
