"""Decode throughput: the vidssl loader against raw torchcodec and pytorchvideo, in one process,
on the synthetic dataset and on generated XVID AVI files with B-frames (UCF101's kind of file).

Every contender reads the *same* clips (same videos, same frame indices, drawn once up front
with the same sampler), in interleaved rounds so that machine noise hits all of them alike.
Results are ratios to the floor (a) — raw ``torchcodec`` ``get_frames_at`` on the sampled
indices, one decoder per clip, nothing else — because absolute clip rates on a shared machine
mean little.

Contenders:
    raw_torchcodec        the floor.
    vidssl[<backend>]     ``ClipDataset`` + ``DataLoader`` (in-process, batch collation
                          included, no augmentation), for every installed backend.
    vidssl[torchcodec], no deadline
                          the same with ``decode_timeout_s=None``: decoding inline instead of on
                          the deadline's helper thread (what the hang protection costs).
    pytorchvideo          ``EncodedVideo.from_path(...).get_clip(start_s, end_s)`` (PyAV) and
                          its usual stride subsampling, if pytorchvideo is installed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable, Iterator

import numpy as np
import torch

from vidssl.data.dataset import ClipDataset, build_loader
from vidssl.data.decoders import available_decoders
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers.base import SampledClips
from vidssl.errors import VidsslError


class FixedClipDataset(ClipDataset):
    """``ClipDataset`` whose sampler output is fixed per video (benchmark only)."""

    def __init__(self, index: VideoIndex, indices: list[np.ndarray], **kw):
        super().__init__(index, _Replay(indices), **kw)

    def rng(self, i: int, attempt: int = 0) -> np.random.Generator:  # carries i to the replay
        return _IndexedRng(i)


class _IndexedRng:
    def __init__(self, i: int):
        self.i = i


class _Replay:
    def __init__(self, indices: list[np.ndarray]):
        self.indices = indices
        self.view_lengths = (len(indices[0]),)

    def __call__(self, num_frames: int, fps: float, rng: _IndexedRng) -> SampledClips:
        return SampledClips((self.indices[rng.i],), ("clip",))


# Each contender is a generator factory: it yields once per batch of ``batch_size`` clips, so
# the timing loop can interleave contenders batch by batch (machine-load drift then hits all of
# them alike) instead of running each over the whole list in turn.
def _raw_torchcodec(paths: list[str], indices: list[np.ndarray], batch_size: int) -> Iterator[int]:
    from torchcodec.decoders import VideoDecoder

    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        for k in chunk:
            VideoDecoder(paths[k], seek_mode="exact", num_ffmpeg_threads=1).get_frames_at(
                indices[k].tolist())
        yield len(chunk)


def _vidssl(index: VideoIndex, indices: list[np.ndarray], backend: str,
            batch_size: int, **kwargs) -> Iterator[int]:
    ds = FixedClipDataset(index, indices, decoder=backend, **kwargs)
    loader = build_loader(ds, batch_size, shuffle=False, drop_last=False, num_workers=0)
    for batch in loader:
        yield batch["views"][0].shape[0]


def _pytorchvideo(paths: list[str], indices: list[np.ndarray], fps: list[float],
                  batch_size: int) -> Iterator[int]:
    from pytorchvideo.data.encoded_video import EncodedVideo

    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        for k in chunk:
            idx, rate = indices[k], fps[k]
            video = EncodedVideo.from_path(paths[k], decode_audio=False, decoder="pyav")
            frames = video.get_clip(idx[0] / rate, (idx[-1] + 1) / rate)["video"]  # C,T,H,W f32
            step = max(1, int(round((idx[-1] - idx[0]) / max(1, len(idx) - 1))))
            frames = frames[:, ::step][:, : len(idx)]
            video.close()
        yield len(chunk)


def run_decode_benchmark(index: VideoIndex, *, clip_len: int = 16, stride: int = 2,
                         num_clips: int = 64, rounds: int = 5, batch_size: int = 8,
                         seed: int = 0, backends: list[str] | None = None,
                         include_pytorchvideo: bool = True, xvid: bool = True,
                         progress: Callable[[str], None] | None = None) -> dict:
    """Time every contender on the same ``num_clips`` clips, ``rounds`` times, interleaved.

    With ``xvid`` (and the ``ffmpeg`` command line installed) the same table is also measured on
    generated XVID AVI files with B-frames, UCF101's kind of file (:func:`xvid_index`): there
    vidssl's backends read by counting frames from the start of the stream (docs/decoding.md,
    "The contract") while raw torchcodec seeks and returns wrong frames, so the ratio is the
    cost of exactness on that container.
    """
    result = _table(index, clip_len=clip_len, stride=stride, num_clips=num_clips, rounds=rounds,
                    batch_size=batch_size, seed=seed, backends=backends,
                    include_pytorchvideo=include_pytorchvideo, progress=progress)
    result.update(benchmark="decode_throughput", rounds=rounds, torch_threads_during_run=1,
                  batch_size=batch_size, environment=environment())
    if xvid:
        result["xvid"] = {}
        try:
            variants = xvid_index()
        except VidsslError as err:
            result["notes"].append(f"XVID table skipped: {err}")
            variants = {}
        for name, sub in variants.items():
            if progress:
                progress(f"XVID AVI files, {name}")
            result["xvid"][name] = _table(
                sub, clip_len=clip_len, stride=stride, num_clips=min(num_clips, XVID_MAX_CLIPS),
                rounds=rounds,
                batch_size=batch_size, seed=seed, backends=backends,
                include_pytorchvideo=include_pytorchvideo, progress=progress)
    return result


# Generated stand-ins for UCF101's files: XVID-tagged MPEG-4 part 2 with B-frames in AVI, 320x240
# at 25 fps, 4 to 10 s (UCF101 averages 7 s). Two keyframe intervals bracket what real encoders
# do: 12 (FFmpeg's default GOP) and 250 (Xvid's usual maximum: one keyframe per short clip).
XVID_GOPS = (12, 250)
XVID_SECONDS = (4, 5, 6, 7, 8, 10)
XVID_MAX_CLIPS = 64  # 320x240 clips are ~10x the work of the synthetic 64x64 ones


def xvid_index(root: str | None = None) -> dict[str, VideoIndex]:
    """``{"gop12": index, "gop250": index}`` over generated XVID AVI files (written once under
    ``root``, default ``$VIDSSL_CACHE_DIR/bench/xvid``). Raises ``VidsslError`` without ffmpeg."""
    import subprocess

    from vidssl.data.decoders.conformance import ffmpeg_path
    from vidssl.data.index import build_index
    from vidssl.data.index.metadata import cache_root

    ffmpeg = ffmpeg_path()
    root = root or os.path.join(cache_root(), "bench", "xvid")
    out = {}
    for gop in XVID_GOPS:
        folder = os.path.join(root, f"gop{gop}", "videos")
        os.makedirs(folder, exist_ok=True)
        for k, seconds in enumerate(XVID_SECONDS):
            path = os.path.join(folder, f"v_{k}_{seconds}s.avi")
            if not os.path.exists(path):
                tmp = path + ".part.avi"
                subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                                "testsrc2=size=320x240:rate=25", "-t", str(seconds), "-c:v",
                                "mpeg4", "-vtag", "XVID", "-bf", "2", "-g", str(gop), "-q:v", "4",
                                tmp], check=True, capture_output=True)
                os.replace(tmp, path)
        index = build_index("folder", os.path.dirname(folder), progress=False)
        index.name = f"XVID AVI 320x240 with B-frames, keyframe every {gop} frames"
        out[f"gop{gop}"] = index
    return out


def _table(index: VideoIndex, *, clip_len: int, stride: int, num_clips: int, rounds: int,
           batch_size: int, seed: int, backends: list[str] | None, include_pytorchvideo: bool,
           progress: Callable[[str], None] | None) -> dict:
    from vidssl.data.samplers import RandomClipSampler

    rng = np.random.default_rng(seed)
    sampler = RandomClipSampler(num_frames=clip_len, stride=stride)
    pos = rng.choice(len(index), size=num_clips, replace=num_clips > len(index))
    sub = index.subset(pos, name=f"{index.name} (benchmark)")
    indices = [sampler(int(sub.num_frames[i]), float(sub.fps[i]), rng).views[0]
               for i in range(len(sub))]
    paths, fps = sub.paths, [float(f) for f in sub.fps]

    contenders: dict[str, Callable[[], Iterator[int]]] = {
        "raw_torchcodec": lambda: _raw_torchcodec(paths, indices, batch_size)}
    for backend in backends or available_decoders():
        contenders[f"vidssl[{backend}]"] = (
            lambda b=backend: _vidssl(sub, indices, b, batch_size))
    if "vidssl[torchcodec]" in contenders:  # what the per-file decode deadline costs
        contenders["vidssl[torchcodec], no deadline"] = (
            lambda: _vidssl(sub, indices, "torchcodec", batch_size, decode_timeout_s=None))
    notes = []
    if include_pytorchvideo:
        try:
            import pytorchvideo.data.encoded_video  # noqa: F401
            contenders["pytorchvideo"] = lambda: _pytorchvideo(paths, indices, fps, batch_size)
        except ImportError as err:
            notes.append(f"pytorchvideo skipped: {err}")
    # One intra-op thread for every contender ("one process, one decode thread"): on a loaded
    # 2-core machine, torch's OpenMP pool turns a 1.5 MB torch.stack into ~60 ms of spinning,
    # which would measure the machine's load, not the loader.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = _time_rounds(contenders, rounds, num_clips, progress)
    finally:
        torch.set_num_threads(threads)
    floor = times["raw_torchcodec"]
    results = {name: {"clips_per_s": num_clips / statistics.median(t),
                      "median_s": statistics.median(t),
                      # paired: each round's floor time over this contender's time, median
                      "ratio_to_raw_torchcodec": statistics.median(
                          f / c for f, c in zip(floor, t)),
                      "ratio_range": [min(f / c for f, c in zip(floor, t)),
                                      max(f / c for f, c in zip(floor, t))],
                      "round_s": t} for name, t in times.items()}
    return {
        "dataset": index.name,
        "clip": {"frames": clip_len, "stride": stride, "num_clips": num_clips,
                 "size": _frame_size(paths[0])},
        "results": results,
        "notes": notes,
    }


def _time_rounds(contenders: dict[str, Callable[[], Iterator[int]]], rounds: int,
                 num_clips: int, progress: Callable[[str], None] | None) -> dict[str, list[float]]:
    """Per round: step every contender one batch at a time, rotating who goes first."""
    for make in contenders.values():  # warm-up: imports, page cache
        sum(make())
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        iters = {name: contenders[name]() for name in names}
        spent = dict.fromkeys(names, 0.0)
        clips = dict.fromkeys(names, 0)
        step = 0
        while iters:
            order = names[step % len(names):] + names[: step % len(names)]
            for name in order:
                if name not in iters:
                    continue
                t0 = time.perf_counter()
                n = next(iters[name], None)
                spent[name] += time.perf_counter() - t0
                if n is None:
                    del iters[name]
                else:
                    clips[name] += n
            step += 1
        for name in names:
            if clips[name] != num_clips:
                raise RuntimeError(f"{name} read {clips[name]} clips instead of {num_clips}")
            times[name].append(spent[name])
        if progress:
            progress(f"round {r + 1}/{rounds} done")
    return times


def _frame_size(path: str) -> list[int]:
    from vidssl.data.decoders import probe_video

    meta = probe_video(path)
    return [meta.height, meta.width]


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "torchvision", "torchcodec", "av", "decord", "pytorchvideo", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "versions": versions, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _markdown_table(table: dict, rounds: int, title: str) -> list[str]:
    clip = table["clip"]
    lines = [
        f"## {title}",
        "",
        f"{clip['num_clips']} clips of {clip['frames']} frames at stride {clip['stride']}, "
        f"{clip['size'][0]}x{clip['size'][1]}, {rounds} rounds, contenders interleaved "
        "batch by batch, one process, one decode thread. Ratio: median over rounds of the "
        "round's raw-torchcodec time over the contender's time (min-max over rounds).",
        "",
        "| contender | clips/s | ratio to raw torchcodec | min-max |",
        "|---|---:|---:|---:|",
    ]
    for name, r in table["results"].items():
        lo, hi = r.get("ratio_range", [r["ratio_to_raw_torchcodec"]] * 2)
        lines.append(f"| {name} | {r['clips_per_s']:.1f} | {r['ratio_to_raw_torchcodec']:.3f} | "
                     f"{lo:.2f}-{hi:.2f} |")
    lines += [f"Note: {n}" for n in table.get("notes", [])]
    return lines + [""]


def to_markdown(result: dict) -> str:
    lines = ["# Decode throughput", ""]
    lines += _markdown_table(result, result["rounds"], result["dataset"])
    for name, table in result.get("xvid", {}).items():
        lines += _markdown_table(table, result["rounds"], table["dataset"])
    if result.get("xvid"):
        lines += ["On the XVID files raw torchcodec seeks and returns wrong frames (frame k-1 "
                  "for k, see docs/decoding.md), so there the ratio is the cost of exactness: "
                  "vidssl[torchcodec] seeks to a keyframe where the index verified it (these "
                  "MPEG-4 part 2 files) and places frames by timestamp; PyAV and decord count "
                  "frames from the start of the stream.", ""]
    env = result["environment"]
    lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
              f"CPU count {env['cpu_count']}, {env['platform']}, {env['time']}."]
    return "\n".join(lines) + "\n"


def write_results(result: dict, out_dir: str, stem: str = "decode_throughput",
                  markdown: str | None = None) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{stem}.json")
    md_path = os.path.join(out_dir, f"{stem}.md")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
    with open(md_path, "w") as f:
        f.write(to_markdown(result) if markdown is None else markdown)
    return json_path, md_path
