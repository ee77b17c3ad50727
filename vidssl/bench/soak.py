"""Memory soak: does memory stay flat over many decodes, and do DataLoader workers share the index?

Two measurements, both in one process so the comparison is side by side:

1. **Decode soak** (per backend): read ``num_clips`` clips through ``ClipDataset`` (the training
   path: sampler, decoder, deadline thread) cycling over the dataset's videos, sampling the
   process RSS every ``sample_every`` clips. The slope of RSS against clips over the part after
   warm-up (least squares, KiB per 1,000 clips) is the leak rate; a decoder that leaves
   containers open shows up as a steady positive slope.
2. **Index sharing**: a ``VideoIndex`` of ``num_records`` synthetic records (metadata only, no
   files; Kinetics-like paths), its build / save / load times, then ``workers`` DataLoader worker
   processes that each read every column of a spread-out 1/``workers`` of the records (as a
   shuffled epoch does). Each worker's private memory (USS) and proportional share (PSS) are read
   from ``/proc/<pid>/smaps_rollup`` at the end of the epoch. The baseline is the same epoch over
   the same records held as a Python list of dicts, the usual way, whose reference counts make
   every worker copy the pages it touches.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidssl.data.dataset import ClipDataset
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.errors import VidsslError

MiB = 1024 * 1024


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def smaps_rollup(pid: int | str = "self") -> dict[str, int]:
    """``Rss``, ``Pss``, ``Private_Clean``, ``Private_Dirty``, ... of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def slope_per_1000(clips: Sequence[int], rss: Sequence[int], warmup: float) -> float:
    """Least-squares slope of RSS (KiB) per 1,000 clips over the samples after ``warmup``."""
    x = np.asarray(clips, dtype=np.float64)
    y = np.asarray(rss, dtype=np.float64) / 1024
    keep = x >= x[-1] * warmup
    if keep.sum() < 3:
        raise VidsslError("too few RSS samples after warm-up: raise num_clips or lower sample_every")
    return float(np.polyfit(x[keep], y[keep], 1)[0] * 1000)


def decode_soak(index: VideoIndex, backend: str, num_clips: int = 10_000, sample_every: int = 250,
                warmup: float = 0.2, clip_len: int = 16, stride: int = 2,
                progress: Callable[[str], None] | None = None) -> dict:
    """RSS over ``num_clips`` clips decoded with ``backend`` (see the module docstring)."""
    dataset = ClipDataset(index, RandomClipSampler(num_frames=clip_len, stride=stride),
                          decoder=backend)
    gc.collect()
    clips, rss = [0], [rss_bytes()]
    start = time.perf_counter()
    for k in range(num_clips):
        sample = dataset[k % len(dataset)]
        del sample
        if (k + 1) % sample_every == 0:
            clips.append(k + 1)
            rss.append(rss_bytes())
            if progress and (k + 1) % (sample_every * 8) == 0:
                progress(f"{backend}: {k + 1}/{num_clips} clips, RSS {rss[-1] / MiB:.0f} MiB")
        if dataset.epoch != k // len(dataset):
            dataset.set_epoch(k // len(dataset))  # new clip draws on every pass
    elapsed = time.perf_counter() - start
    after = [r for c, r in zip(clips, rss) if c >= clips[-1] * warmup]
    return {
        "backend": backend, "clips": num_clips, "videos": len(index), "elapsed_s": elapsed,
        "clips_per_s": num_clips / elapsed,
        "rss_start_mib": rss[0] / MiB, "rss_after_warmup_mib": after[0] / MiB,
        "rss_end_mib": rss[-1] / MiB, "rss_max_mib": max(rss) / MiB,
        "slope_kib_per_1000_clips": slope_per_1000(clips, rss, warmup),
        "samples": {"clips": clips, "rss_mib": [r / MiB for r in rss]},
    }


def synthetic_records(n: int, num_classes: int = 400, seed: int = 0):
    """Columns of ``n`` Kinetics-like records: paths, labels, frame counts, fps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    paths = [f"/datasets/kinetics400/train/class_{c:03d}/{i:011d}_{i % 997:06d}_{i % 991:06d}.mp4"
             for i, c in enumerate(labels.tolist())]
    return paths, labels, rng.integers(150, 300, n), np.full(n, 30.0, np.float32)


class _IndexEpoch(Dataset):
    """Item ``i`` reads every field of records ``i, i + n_items, i + 2 n_items, ...``."""

    def __init__(self, records, n_items: int):
        self.records, self.n_items = records, n_items

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> int:
        total = 0
        recs = self.records
        if isinstance(recs, VideoIndex):
            for j in range(i, len(recs), self.n_items):
                total += len(recs.path(j)) + int(recs.labels[j]) + int(recs.num_frames[j])
                total += int(recs.fps[j])
        else:
            for j in range(i, len(recs), self.n_items):
                r = recs[j]
                total += len(r["path"]) + r["label"] + r["num_frames"] + int(r["fps"])
        return total


def _worker_memory(records, workers: int, n_items: int) -> dict:
    loader = DataLoader(_IndexEpoch(records, n_items), batch_size=None, num_workers=workers,
                        shuffle=True, persistent_workers=True,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    checksum = sum(it)  # the whole epoch
    # Workers stay alive (persistent) until the iterator goes: read their memory now.
    pids = [w.pid for w in it._workers]  # noqa: SLF001 - the only way to reach worker pids
    mem = [smaps_rollup(pid) for pid in pids]
    del it, loader
    uss = [m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in mem]
    return {"checksum": int(checksum),
            "worker_rss_mib": [m["Rss"] / MiB for m in mem],
            "worker_uss_mib": [u / MiB for u in uss],
            "worker_pss_mib": [m["Pss"] / MiB for m in mem],
            "max_worker_uss_mib": max(uss) / MiB,
            "total_worker_pss_mib": sum(m["Pss"] for m in mem) / MiB}


def index_sharing(num_records: int = 1_000_000, workers: int = 8, n_items: int = 512,
                  baseline: bool = True, tmp_dir: str | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Build/save/load times of a ``num_records`` index and worker memory over one epoch."""
    import tempfile

    paths, labels, frames, fps = synthetic_records(num_records)
    t0 = time.perf_counter()
    index = VideoIndex(paths, labels, frames, fps, name=f"synthetic-{num_records}")
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        path = os.path.join(tmp, "index.npz")
        t0 = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t0
        file_mib = os.path.getsize(path) / MiB
        t0 = time.perf_counter()
        index = VideoIndex.load(path)
        load_s = time.perf_counter() - t0
    index_mib = sum(a.nbytes for a in (index._path_bytes, index._offsets, index.labels,  # noqa: SLF001
                                         index.num_frames, index.fps, index.groups)) / MiB
    if progress:
        progress(f"index of {num_records} records: built in {build_s:.1f} s, {index_mib:.0f} MiB")
    result = {"records": num_records, "workers": workers, "build_s": build_s, "save_s": save_s,
              "load_s": load_s, "file_mib": file_mib, "index_mib": index_mib,
              "parent_rss_mib": rss_bytes() / MiB}
    result["vidssl_index"] = _worker_memory(index, workers, n_items)
    if baseline:
        gc.collect()
        before = rss_bytes()
        records = [{"path": p, "label": int(c), "num_frames": int(f), "fps": float(r)}
                   for p, c, f, r in zip(paths, labels.tolist(), frames.tolist(), fps.tolist())]
        result["list_of_dicts_mib"] = (rss_bytes() - before) / MiB
        if progress:
            progress(f"baseline list of dicts: {result['list_of_dicts_mib']:.0f} MiB in the parent")
        result["list_of_dicts"] = _worker_memory(records, workers, n_items)
        if result["list_of_dicts"]["checksum"] != result["vidssl_index"]["checksum"]:
            raise VidsslError("index and list-of-dicts epochs read different records")
        del records
        gc.collect()
    return result


def to_markdown(result: dict) -> str:
    env = result["environment"]
    lines = ["# Memory soak", ""]
    if result.get("decode"):
        d0 = result["decode"][0]
        lines += [
            f"## Decode: RSS over {d0['clips']} clips per backend",
            "",
            f"`ClipDataset` (sampler, decoder, deadline thread) cycling over {d0['videos']} "
            "videos of the synthetic dataset, 16 frames at stride 2, one process. Slope: least "
            f"squares over the samples after the first {int(result['warmup'] * 100)}% of clips.",
            "",
            "| backend | clips/s | RSS start MiB | after warm-up | end | max | slope KiB / 1k clips |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for d in result["decode"]:
            lines.append(f"| {d['backend']} | {d['clips_per_s']:.0f} | {d['rss_start_mib']:.0f} | "
                         f"{d['rss_after_warmup_mib']:.0f} | {d['rss_end_mib']:.0f} | "
                         f"{d['rss_max_mib']:.0f} | {d['slope_kib_per_1000_clips']:+.1f} |")
        lines.append("")
    s = result.get("index")
    if s:
        lines += [
            f"## Index: {s['records']:,} records, {s['workers']} DataLoader workers",
            "",
            f"Build {s['build_s']:.2f} s, save {s['save_s']:.2f} s, load {s['load_s']:.2f} s; "
            f"{s['index_mib']:.0f} MiB in memory, {s['file_mib']:.0f} MiB on disk. Each worker "
            "reads every field of a spread-out 1/workers of the records (a shuffled epoch).",
            "",
            "| records held as | parent MiB | max worker USS MiB | total worker PSS MiB |",
            "|---|---:|---:|---:|",
            f"| vidssl `VideoIndex` (columns) | {s['index_mib']:.0f} | "
            f"{s['vidssl_index']['max_worker_uss_mib']:.0f} | "
            f"{s['vidssl_index']['total_worker_pss_mib']:.0f} |",
        ]
        if "list_of_dicts" in s:
            lines.append(f"| Python list of dicts (baseline) | {s['list_of_dicts_mib']:.0f} | "
                         f"{s['list_of_dicts']['max_worker_uss_mib']:.0f} | "
                         f"{s['list_of_dicts']['total_worker_pss_mib']:.0f} |")
        lines.append("")
    lines += [f"Command: `{result['command']}`",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
              f"CPU count {env['cpu_count']}, {env['platform']}, {env['time']}."]
    return "\n".join(lines) + "\n"
