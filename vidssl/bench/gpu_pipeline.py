"""GPU pipeline benchmark: CPU vs NVDEC decoding, and the pretraining step fed by the real loader
vs by data already on the device, in one process (``vidssl bench gpu``).

1. **Decode**: the same clips (16 frames at stride 2, drawn once) from H.264 files generated at
   320x240 (UCF101-like) and 1280x720 (Kinetics-like); CPU backends in a DataLoader with one
   worker per CPU core (all cores), GPU backends in the training process (``DeviceLoader``).
   Reported: clips/s and frames/s per backend and size, timed from the first batch (worker
   start-up and decoder warm-up excluded).
2. **End to end**: CVRL's pretraining step for each encoder (R3D-18 at 16x112x112, a ViT-B video
   encoder at 16x224x224) at the largest batch that fits (tried in the given order, stopping at
   the first CUDA out-of-memory), fed by the real loader (``data.decoder=auto``: the decoder the
   calibration picks) vs by the same batches already on the device, interleaved rounds
   (``vidssl.bench.train``). Reported: clips/s of both, their ratio (the bar: >= 0.9), the
   data-wait fraction (1 - ratio) and the peak GPU memory per clip.

Every number is written with the device name, torch / CUDA / cuDNN versions and the command.
On a machine without CUDA it runs the CPU parts (``--smoke`` shrinks everything to a CPU test).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np
import torch

from vidssl.bench.decode import FixedClipDataset, environment
from vidssl.data.dataset import build_loader, set_loader_epoch
from vidssl.data.decoders import available_decoders, decoder_device, list_decoders
from vidssl.data.device_loader import DeviceLoader
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler

SIZES = {"320x240": (240, 320), "1280x720": (720, 1280)}
ENCODERS = {  # name -> (clip_len, crop, resize) of its usual input
    "r3d_18": (16, 112, 128), "videomae_vit_b": (16, 224, 256),
    "r3d_tiny": (8, 32, 40), "videomae_tiny": (8, 32, 40),
}


def write_test_videos(out_dir: str, height: int, width: int, count: int, frames: int) -> list[str]:
    """``count`` H.264 files of ``frames`` moving-gradient frames (GOP 32, like web video)."""
    from torchcodec.encoders import VideoEncoder

    os.makedirs(out_dir, exist_ok=True)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    paths = []
    for k in range(count):
        path = os.path.join(out_dir, f"{width}x{height}_{k}.mp4")
        if not os.path.exists(path):
            t = torch.arange(frames).view(-1, 1, 1)
            r = (xx + 3 * t + 40 * k) % 256
            g = (yy + 2 * t) % 256
            b = (xx + yy + 5 * t) % 256
            video = torch.stack([r, g, b], dim=1).to(torch.uint8)
            VideoEncoder(video, frame_rate=25).to_file(path, codec="libx264",
                                                       extra_options={"g": "32"})
        paths.append(path)
    return paths


def decode_table(paths: list[str], backends: list[str], clips: int, workers: int,
                 clip_len: int = 16, stride: int = 2, seed: int = 0) -> dict[str, dict]:
    """Clips/s and frames/s of each backend on the same ``clips`` clips of ``paths``."""
    from vidssl.data.decoders import probe_video

    metas = [probe_video(p) for p in paths]
    rng = np.random.default_rng(seed)
    sampler = RandomClipSampler(num_frames=clip_len, stride=stride)
    order = [int(rng.integers(len(paths))) for _ in range(clips)]
    sub = VideoIndex([paths[i] for i in order], [0] * clips, [metas[i].num_frames for i in order],
                     [metas[i].fps for i in order])
    indices = [sampler(metas[i].num_frames, metas[i].fps, rng).views[0] for i in order]
    out = {}
    for backend in backends:
        ds = FixedClipDataset(sub, indices, decoder=backend)
        if decoder_device(backend) == "cuda":
            loader = DeviceLoader(ds, 8, "cuda", shuffle=False, drop_last=False)
            where = "GPU, training process"
        else:
            loader = build_loader(ds, 8, shuffle=False, num_workers=workers, drop_last=False,
                                  persistent_workers=workers > 0)
            where = f"CPU, {workers} workers"
        # A warm-up pass (worker start-up, decoder sessions, page cache), then one timed pass
        # over the same clips. Timing from the first batch of a single pass would credit the
        # CPU backends with the batches their workers prefetched before the clock started.
        for epoch in (0, 1):
            set_loader_epoch(loader, epoch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start, n = time.perf_counter(), 0
            for batch in loader:
                n += batch["views"][0].shape[0]
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        out[backend] = {"where": where, "clips": n, "seconds": seconds, "clips_per_s": n / seconds,
                        "frames_per_s": n * clip_len / seconds}
    return out


def _cfg(encoder: str, batch: int, root: str, workers: int, device: str):
    from vidssl.config import load_config
    from vidssl.train.config import PretrainConfig

    clip_len, crop, resize = ENCODERS[encoder]
    return load_config(PretrainConfig, None, [
        f"encoder.name={encoder}", "method.name=cvrl", f"method.params.clip_len={clip_len}",
        f"method.params.crop_size={crop}", f"data.resize={resize}", f"data.root={root}",
        f"data.batch_size={batch}", f"data.num_workers={workers}", "data.decoder=auto",
        f"train.device={device}", "train.progress=false", "train.tensorboard=false",
        f"method.params.hidden_dim={512 if crop > 64 else 32}"])


def largest_batch(encoder: str, candidates: list[int], root: str, workers: int, device: str) -> int:
    """The largest of ``candidates`` (tried in order) whose training step fits in GPU memory."""
    from vidssl.bench.train import run_train_benchmark

    if device != "cuda":
        return candidates[0]
    best = None
    for batch in candidates:
        try:
            run_train_benchmark(_cfg(encoder, batch, root, workers, device), steps=1, rounds=1,
                                warmup=1)
            best = batch
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    if best is None:
        raise torch.cuda.OutOfMemoryError(f"{encoder}: even batch {candidates[0]} does not fit")
    return best


def end_to_end(encoder: str, batch: int, root: str, workers: int, device: str, steps: int,
               rounds: int, progress: Callable[[str], None] | None = None) -> dict:
    from vidssl.bench.train import run_train_benchmark

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = run_train_benchmark(_cfg(encoder, batch, root, workers, device), steps=steps,
                                 rounds=rounds, progress=progress)
    result["data_wait_fraction"] = max(0.0, 1.0 - result["efficiency"])
    if device == "cuda":
        result["peak_gpu_mib_per_clip"] = torch.cuda.max_memory_allocated() / batch / 2**20
    return result


def gpu_environment() -> dict:
    env = environment()
    env["cuda"] = torch.version.cuda
    env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return env


def run_gpu_pipeline(root: str, *, sizes: list[str], videos: int, frames: int, clips: int,
                     encoders: list[str], batch_sizes: list[int], steps: int, rounds: int,
                     workers: int | None = None, cache_dir: str | None = None,
                     progress: Callable[[str], None] | None = None) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = workers if workers is not None else (os.cpu_count() or 1)
    backends = available_decoders("cpu") + available_decoders("cuda")
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "vidssl-gpu-pipeline")
    result = {"device": device, "workers": workers, "decode": {}, "end_to_end": [],
              "unavailable": sorted(set(list_decoders()) - set(backends))}
    for size in sizes:
        h, w = SIZES[size] if size in SIZES else map(int, size.split("x")[::-1])
        paths = write_test_videos(os.path.join(cache_dir, size), h, w, videos, frames)
        result["decode"][size] = decode_table(paths, backends, clips, workers)
        if progress:
            progress(f"decode {size}: " + ", ".join(f"{k} {v['clips_per_s']:.0f} clips/s"
                                                    for k, v in result["decode"][size].items()))
    for encoder in encoders:
        batch = largest_batch(encoder, batch_sizes, root, workers, device)
        r = end_to_end(encoder, batch, root, workers, device, steps, rounds, progress)
        result["end_to_end"].append(r)
    result["environment"] = gpu_environment()
    return result


def to_markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"# GPU pipeline ({env.get('gpu') or 'no GPU: CPU parts only'})", ""]
    lines += ["## Decode", "", "| size | backend | where | clips/s | frames/s |",
              "|---|---|---|---:|---:|"]
    for size, rows in result["decode"].items():
        for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["clips_per_s"]):
            lines.append(f"| {size} | {name} | {r['where']} | {r['clips_per_s']:.1f} | "
                         f"{r['frames_per_s']:.0f} |")
    if result["unavailable"]:
        lines += ["", "Not available here: " + ", ".join(result["unavailable"]) + "."]
    lines += ["", "## Pretraining step (CVRL): real loader vs data already on the device", "",
              "| encoder | clip | batch | loader clips/s | on-device clips/s | ratio | data wait | "
              "peak MiB / clip |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["end_to_end"]:
        c = r["clips_per_s"]
        peak = r.get("peak_gpu_mib_per_clip")
        lines.append(f"| {r['encoder']} | {'x'.join(map(str, r['clip_shape']))} | {r['batch_size']} | "
                     f"{c['loader']:.1f} | {c['in_memory']:.1f} | {r['efficiency']:.3f} | "
                     f"{100 * r['data_wait_fraction']:.0f}% | "
                     f"{'-' if peak is None else f'{peak:.0f}'} |")
    lines += ["", f"Command: `{result.get('command', 'vidssl bench gpu')}`",
              f"torch {env['versions'].get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
              f"{env['cpu_count']} CPUs, {env['platform']}, {env['time']}."]
    return "\n".join(lines) + "\n"
