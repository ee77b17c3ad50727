"""``make_synthetic``: write the embedded action dataset in the UCF101 layout (+ tracking sets).

Layout under ``out_dir``::

    videos/<Class>/v_<Class>_gGG_cCC.{avi,mp4}   MPEG-4 part 2 in AVI (like UCF101) / H.264 in MP4
    splits/classInd.txt                          "<1-based id> <Class>"
    splits/trainlist0{1,2,3}.txt                 "<Class>/v_<Class>_gGG_cCC.<ext> <1-based id>"
    splits/testlist0{1,2,3}.txt                  "<Class>/v_<Class>_gGG_cCC.<ext>"
    metadata.jsonl                               one JSON object per video (class, group, seed,
                                                 appearance, dynamics parameters, ...)
    tracking/                                    DAVIS-2017 + MOT17 layouts (see tracking.py)
    synthetic.json                               generation parameters; written last, so its
                                                 "status" says whether the set is complete

Every video is a pure function of ``(seed, class, group, clip)``: the worker count and the order
of generation change nothing.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidssl.data.synthetic.appearance import STREAM_DYNAMICS, clip_appearance
from vidssl.data.synthetic.classes import SYNTHETIC_CLASSES, render_clip
from vidssl.data.video_io import encode_video
from vidssl.errors import ConfigError, DatasetError
from vidssl.runtime.progress import progress_bar

FORMAT_VERSION = 1
CONTAINERS = ("avi", "mp4", "mixed")
STREAM_CODECS = {"avi": "mpeg4", "mp4": "h264"}  # what decoders report
NUM_SPLITS = 3
OUTPUTS = ("videos", "splits", "tracking", "metadata.jsonl", "synthetic.json")


@dataclass
class SyntheticSummary:
    """What :func:`make_synthetic` produced (or found already generated).

    Attributes:
        out_dir: dataset root.
        classes: class names in label order.
        num_videos: action videos written (``classes x groups x clips``).
        num_tracking_sequences: tracking sequences written.
        containers: number of videos per container (``{"avi": n, "mp4": m}``).
        videos_dir, splits_dir, metadata_path, tracking_dir: where things are.
        elapsed_s: wall time of this call.
        already_generated: True when an identical dataset was found and nothing was written.
        params: the generation parameters (as stored in ``synthetic.json``).
    """

    out_dir: Path
    classes: list[str]
    num_videos: int
    num_tracking_sequences: int
    containers: dict[str, int]
    videos_dir: Path
    splits_dir: Path
    metadata_path: Path
    tracking_dir: Path | None
    elapsed_s: float
    already_generated: bool = False
    params: dict = field(default_factory=dict)

    def describe(self) -> str:
        """A few human-readable lines for the CLI."""
        state = ("already generated (same parameters), nothing written" if self.already_generated
                 else f"generated in {self.elapsed_s:.1f} s")
        containers = ", ".join(f"{n} .{ext}" for ext, n in sorted(self.containers.items()))
        p = self.params
        lines = [
            f"synthetic dataset at {self.out_dir}: {state}",
            f"  {self.num_videos} videos ({containers}), {len(self.classes)} classes x "
            f"{p.get('groups_per_class')} groups x {p.get('clips_per_group')} clips, "
            f"{p.get('num_frames')} frames of {p.get('size')}x{p.get('size')} at {p.get('fps')} fps",
            f"  classes: {', '.join(self.classes)}",
            f"  splits: {self.splits_dir}  metadata: {self.metadata_path}",
        ]
        if self.tracking_dir is not None:
            lines.append(f"  tracking: {self.num_tracking_sequences} sequences in "
                         f"{self.tracking_dir} (DAVIS + MOT layouts)")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ naming --

def container_for(index: int, container: str) -> str:
    """Container of the ``index``-th video (global order); ``mixed`` alternates avi/mp4."""
    if container == "mixed":
        return "avi" if index % 2 == 0 else "mp4"
    return container


def video_name(class_name: str, group: int, clip: int, ext: str, width: int = 2) -> str:
    """UCF101 file name, 1-based group/clip: ``v_<Class>_g01_c01.avi``."""
    return f"v_{class_name}_g{group:0{width}d}_c{clip:0{width}d}.{ext}"


def test_groups(groups_per_class: int, split: int) -> set[int]:
    """1-based groups tested by ``split`` (1..3): the split-th of three contiguous thirds."""
    thirds = np.array_split(np.arange(1, groups_per_class + 1), NUM_SPLITS)
    return {int(g) for g in thirds[split - 1]}


# ------------------------------------------------------------------------------------- workers --

def _video_job(job: dict) -> dict:
    """Render, encode and describe one video (runs in a worker process)."""
    ci, g, c, seed = job["class_index"], job["group"], job["clip"], job["seed"]
    name = SYNTHETIC_CLASSES[ci]
    app = clip_appearance(seed, ci, g, c, job["appearance_correlation"])
    rng_key = [seed, STREAM_DYNAMICS, ci, g, c]
    clip = render_clip(name, app, job["num_frames"], job["size"],
                       np.random.default_rng(np.random.SeedSequence(rng_key)))
    path = os.path.join(job["out_dir"], job["path"])
    encode_video(dusk(clip.frames, job.get("time_cue", 0.0)), path, job["fps"])
    return {
        "path": job["path"], "class": name, "label": ci, "class_id": ci + 1,
        "group": g + 1, "clip": c + 1, "seed": seed, "rng_key": rng_key,
        "container": job["ext"], "codec": STREAM_CODECS[job["ext"]],
        "num_frames": job["num_frames"], "fps": job["fps"],
        "width": job["size"], "height": job["size"],
        "test_in_splits": job["test_in_splits"], "palette": app.palette,
        "appearance": app.to_dict(), "dynamics": clip.params,
    }


def dusk(frames: np.ndarray, strength: float) -> np.ndarray:
    """The ``time_cue`` knob: the whole frame dims linearly over the clip, from full light to
    ``1 - strength`` (0: unchanged). The same for every class, so it tells the arrow of time and
    nothing about the action."""
    if strength <= 0:
        return frames
    light = 1.0 - strength * np.linspace(0.0, 1.0, len(frames), dtype=np.float32)
    return np.clip(np.rint(frames.astype(np.float32) * light[:, None, None, None]), 0, 255).astype(np.uint8)


def _run_job(job: dict) -> tuple[str, int, dict]:
    if job["kind"] == "video":
        return "video", job["order"], _video_job(job)
    from vidssl.data.synthetic.tracking import write_tracking_sequence

    return "tracking", job["order"], write_tracking_sequence(
        job["out_dir"], job["seq_index"], job["seed"], job["num_frames"], job["size"], job["fps"])


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _execute(jobs: list[dict], workers: int, progress: bool) -> list[tuple[str, int, dict]]:
    results = []
    with progress_bar(progress, len(jobs), "make-synthetic", stderr=True) as advance:
        if workers <= 1 or len(jobs) <= 1:
            it = map(_run_job, jobs)
            pool = None
        else:
            # fork where it exists (Linux): fast start, and callers need no `__main__` guard.
            # Workers only run numpy and FFmpeg, single-threaded (as DataLoader workers do).
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            if ctx.get_start_method() == "fork":  # import once here, not once per worker (~4 s)
                import PIL.Image  # noqa: F401
                import torchcodec.encoders  # noqa: F401
            pool = ctx.Pool(workers, initializer=_worker_init)
            it = pool.imap_unordered(_run_job, jobs, chunksize=1)  # slow tracking jobs go first
        try:
            for res in it:
                results.append(res)
                advance(1)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    return results


# ------------------------------------------------------------------------------- entry point --

def _validate(params: dict, workers: int | None) -> None:
    p = params
    checks = [
        (isinstance(p["num_classes"], int) and 1 <= p["num_classes"] <= len(SYNTHETIC_CLASSES),
         f"num_classes must be an integer in 1..{len(SYNTHETIC_CLASSES)}"),
        (isinstance(p["groups_per_class"], int) and p["groups_per_class"] >= NUM_SPLITS,
         f"groups_per_class must be an integer >= {NUM_SPLITS} (each of the 3 splits tests a "
         "third of the groups)"),
        (isinstance(p["clips_per_group"], int) and p["clips_per_group"] >= 1,
         "clips_per_group must be an integer >= 1"),
        (isinstance(p["num_frames"], int) and p["num_frames"] >= 2,
         "num_frames must be an integer >= 2"),
        (isinstance(p["size"], int) and p["size"] >= 16 and p["size"] % 2 == 0,
         "size must be an even integer >= 16 (yuv420p needs even frame sizes)"),
        (isinstance(p["fps"], (int, float)) and p["fps"] > 0, "fps must be > 0"),
        (p["container"] in CONTAINERS, f"container must be one of {list(CONTAINERS)}"),
        (isinstance(p["appearance_correlation"], (int, float))
         and 0.0 <= p["appearance_correlation"] <= 1.0,
         "appearance_correlation must be in [0, 1]"),
        (isinstance(p.get("time_cue", 0.0), (int, float)) and 0.0 <= p.get("time_cue", 0.0) < 1.0,
         "time_cue must be in [0, 1)"),
        (isinstance(p["tracking_sequences"], int) and p["tracking_sequences"] >= 0,
         "tracking_sequences must be an integer >= 0"),
        (isinstance(p["seed"], int) and p["seed"] >= 0, "seed must be an integer >= 0"),
        (workers is None or (isinstance(workers, int) and workers >= 1),
         "workers must be None or an integer >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"make_synthetic: {message}")


def _existing(out: Path, params: dict, overwrite: bool) -> dict | None:
    """Inspect ``out``: the stored manifest if an identical complete dataset is there, else None
    (after clearing our outputs when that is allowed). Raises DatasetError on a conflict."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"synthetic dataset path {out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return None
    manifest_path = out / "synthetic.json"
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = None
    if not overwrite:
        if manifest is None or manifest.get("generator") != "vidssl.synthetic":
            raise DatasetError(f"{out} exists and does not hold a vidssl synthetic dataset; "
                               "choose an empty directory or pass --overwrite")
        old = manifest.get("params", {})
        if old != params:
            diff = ", ".join(f"{k}={params.get(k)!r} (found {old.get(k)!r})"
                             for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k))
            raise DatasetError(f"{out} holds a synthetic dataset made with other parameters: "
                               f"{diff}; pass --overwrite to regenerate")
        if manifest.get("status") == "complete" and _files_present(out):
            return manifest
    # Ours (incomplete or to be overwritten): remove only what the generator writes.
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    return None


def _files_present(out: Path) -> bool:
    try:
        with open(out / "metadata.jsonl") as f:
            paths = [json.loads(line)["path"] for line in f if line.strip()]
    except (OSError, ValueError, KeyError):
        return False
    return bool(paths) and all((out / p).is_file() for p in paths)


def _summary(out: Path, manifest: dict, elapsed: float, already: bool) -> SyntheticSummary:
    counts = manifest["counts"]
    return SyntheticSummary(
        out_dir=out, classes=list(manifest["classes"]), num_videos=counts["videos"],
        num_tracking_sequences=counts["tracking_sequences"], containers=dict(counts["containers"]),
        videos_dir=out / "videos", splits_dir=out / "splits", metadata_path=out / "metadata.jsonl",
        tracking_dir=(out / "tracking") if counts["tracking_sequences"] else None,
        elapsed_s=elapsed, already_generated=already, params=dict(manifest["params"]))


def _write_splits(out: Path, classes: list[str], records: list[dict], groups: int) -> None:
    splits = out / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    for k in range(1, NUM_SPLITS + 1):
        tested = test_groups(groups, k)
        train, test = [], []
        for r in records:
            rel = r["path"].split("/", 1)[1]  # drop "videos/"
            if r["group"] in tested:
                test.append(f"{rel}\n")
            else:
                train.append(f"{rel} {r['class_id']}\n")
        (splits / f"trainlist0{k}.txt").write_text("".join(train))
        (splits / f"testlist0{k}.txt").write_text("".join(test))


def make_synthetic(out_dir: str | os.PathLike, *, num_classes: int = 10,
                   groups_per_class: int = 24, clips_per_group: int = 2, num_frames: int = 48,
                   size: int = 64, fps: float = 16, container: str = "mixed",
                   appearance_correlation: float = 0.0, tracking_sequences: int = 4,
                   seed: int = 0, time_cue: float = 0.0, workers: int | None = None, progress: bool = True,
                   overwrite: bool = False) -> SyntheticSummary:
    """Generate the synthetic action dataset (UCF101 layout) and tracking sequences.

    Args:
        out_dir: dataset root (created).
        num_classes: the first ``num_classes`` of :data:`SYNTHETIC_CLASSES`.
        groups_per_class, clips_per_group: UCF101-style ``gGG`` / ``cCC`` counts; clips of one
            group share a source appearance. Split k tests the k-th third of the groups.
        num_frames, size, fps: clip length, square frame side (even), frame rate.
        container: ``"avi"`` (MPEG-4 part 2), ``"mp4"`` (H.264) or ``"mixed"`` (alternating).
        appearance_correlation: probability that a group's background and object colour come
            from a per-class palette (0 = appearance independent of the class).
        tracking_sequences: multi-object sequences under ``tracking/`` (0 = none).
        seed: everything is a deterministic function of it.
        time_cue: a class-independent arrow of time for the order pretexts (VCOP, Shuffle &
            Learn, O3N): every frame is dimmed by ``time_cue * t`` (``t``: 0 at the first frame,
            1 at the last; 0 = off, the default and the motion-only headline's setting).
        workers: processes (default ``min(2, cpu_count)``); results do not depend on it.
        progress: show a rich progress bar on stderr.
        overwrite: replace an existing dataset (only the generator's own outputs are removed).

    Returns:
        A :class:`SyntheticSummary`; ``already_generated`` is True when ``out_dir`` already held
        a complete dataset with identical parameters (nothing is written then).

    Raises:
        ConfigError: an argument is out of range.
        DatasetError: ``out_dir`` holds other content or a dataset made with other parameters
            (and ``overwrite`` is False).
    """
    t0 = time.perf_counter()
    params = {
        "format_version": FORMAT_VERSION, "num_classes": num_classes,
        "groups_per_class": groups_per_class, "clips_per_group": clips_per_group,
        "num_frames": num_frames, "size": size, "fps": fps, "container": container,
        "appearance_correlation": appearance_correlation,
        "tracking_sequences": tracking_sequences, "seed": seed,
    }
    if time_cue:   # recorded only when used: datasets made before the knob keep their manifest
        params["time_cue"] = time_cue
    _validate(params, workers)
    out = Path(out_dir)
    found = _existing(out, params, overwrite)
    if found is not None:
        return _summary(out, found, time.perf_counter() - t0, already=True)

    classes = SYNTHETIC_CLASSES[:num_classes]
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": "vidssl.synthetic", "status": "incomplete", "params": params,
                "classes": classes}
    (out / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n")

    width = max(2, len(str(max(groups_per_class, clips_per_group))))
    tested_in = {g: [k for k in range(1, NUM_SPLITS + 1) if g in test_groups(groups_per_class, k)]
                 for g in range(1, groups_per_class + 1)}
    jobs: list[dict] = []
    for s in range(tracking_sequences):  # slowest jobs first
        jobs.append({"kind": "tracking", "order": s, "out_dir": str(out / "tracking"),
                     "seq_index": s, "seed": seed, "num_frames": num_frames, "size": size,
                     "fps": fps})
    order = 0
    for ci, name in enumerate(classes):
        (out / "videos" / name).mkdir(parents=True, exist_ok=True)
        for g in range(groups_per_class):
            for c in range(clips_per_group):
                ext = container_for(order, container)
                jobs.append({
                    "kind": "video", "order": order, "out_dir": str(out), "class_index": ci,
                    "group": g, "clip": c, "seed": seed, "ext": ext, "num_frames": num_frames,
                    "size": size, "fps": fps, "appearance_correlation": appearance_correlation,
                    "time_cue": time_cue,
                    "test_in_splits": tested_in[g + 1],
                    "path": f"videos/{name}/{video_name(name, g + 1, c + 1, ext, width)}",
                })
                order += 1
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    results = _execute(jobs, workers, progress)

    records = [r for kind, _, r in sorted(results, key=lambda x: (x[0], x[1])) if kind == "video"]
    seqs = [r for kind, _, r in sorted(results, key=lambda x: (x[0], x[1])) if kind == "tracking"]
    with open(out / "metadata.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    _write_splits(out, classes, records, groups_per_class)
    if seqs:
        from vidssl.data.synthetic.tracking import write_tracking_index

        write_tracking_index(out / "tracking", seqs)
    containers = {"avi": 0, "mp4": 0}
    for r in records:
        containers[r["container"]] += 1
    manifest.update(status="complete", counts={
        "videos": len(records), "tracking_sequences": len(seqs), "containers": containers})
    (out / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return _summary(out, manifest, time.perf_counter() - t0, already=False)
