"""Streaming vs whole-sequence tracking: same results, speed, and peak memory.

    python benchmarks/track_streaming.py --baseline b382a26 [--data data/synthetic] \
        [--rounds 3] [--long-dir /tmp/vidssl_track_long] [--out benchmarks/results]

``--baseline`` is a git revision whose ``vidssl/track`` still reads and encodes each sequence
whole; its modules are copied into a temporary package (``baseline_track``) so both versions
run in one process. Three parts:

1. **equality**: ``run_tracking`` of both versions on the synthetic tracking set (pixels and a
   seeded r3d_tiny with the same weights; VOS, MOT, SOT, a few settings); the results JSON
   (summary, per-sequence scores, SOT boxes) must be identical.
2. **speed**: VOS and MOT, both versions interleaved in one process, ``--rounds`` rounds;
   median frames/s and the ratio streaming / baseline.
3. **memory**: one long sequence (``--long-frames`` frames of ``--long-size`` JPEG, a few
   squares drifting over a textured background, DAVIS and MOT layouts) cut to several
   lengths; each (version, task, length) runs ``run_tracking`` with the pixels appearance in
   a fresh process, which reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.

Writes track_streaming.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402


# --------------------------------------------------------------------------- the baseline --
def extract_baseline(rev: str, into: str) -> str:
    """``vidssl/track`` at ``rev`` as package ``baseline_track`` under ``into``."""
    names = subprocess.run(["git", "-C", ROOT, "ls-tree", "--name-only", rev, "vidssl/track/"],
                           check=True, capture_output=True, text=True).stdout.split()
    pkg = os.path.join(into, "baseline_track")
    os.makedirs(pkg, exist_ok=True)
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{name}"], check=True,
                                  capture_output=True, text=True).stdout
            with open(os.path.join(pkg, os.path.basename(name)), "w") as f:
                f.write(text.replace("vidssl.track", "baseline_track"))
    return into


def adapters(new_mod, old_mod, name: str):
    torch.manual_seed(0)
    old = old_mod.build_adapter(pixels=True) if name == "pixels" else old_mod.build_adapter(name)
    new = new_mod.build_adapter(pixels=True) if name == "pixels" else new_mod.build_adapter(name)
    new.load_state_dict(old.state_dict())
    return new, old


def comparable(res: dict) -> str:
    keep = {k: v for k, v in res.items() if k not in ("speed", "config", "visualizations",
                                                       "appearance")}
    return json.dumps(keep, sort_keys=True, default=float)


# ------------------------------------------------------------------------- long sequence --
def write_long(root: str, frames: int, width: int, height: int, lengths: list[int]) -> None:
    """``<root>/src`` (JPEG frames, first-frame mask, gt boxes) and, per length ``L``,
    ``<root>/L/davis`` and ``<root>/L/mot`` whose frames are links to the first ``L``."""
    from PIL import Image

    src = os.path.join(root, "src")
    done = os.path.join(src, "DONE")
    if not os.path.isfile(done):
        os.makedirs(src, exist_ok=True)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:height, 0:width]
        bg = np.stack([(xx * 200 // width), (yy * 200 // height), ((xx + yy) * 100 // (width + height))], -1)
        objs = [(rng.integers(0, width - 80), rng.integers(0, height - 80), *rng.uniform(-3, 3, 2),
                 rng.integers(60, 256, 3)) for _ in range(3)]
        gt = []
        for t in range(frames):
            frame = (bg + rng.integers(0, 30, (height, width, 3))).clip(0, 255).astype(np.uint8)
            label = np.zeros((height, width), dtype=np.uint8)
            for k, (x0, y0, vx, vy, color) in enumerate(objs, 1):
                x = int(abs((x0 + vx * t) % (2 * (width - 80)) - (width - 80)))
                y = int(abs((y0 + vy * t) % (2 * (height - 80)) - (height - 80)))
                frame[y:y + 80, x:x + 60] = color
                label[y:y + 80, x:x + 60] = k
                gt.append(f"{t + 1},{k},{x + 1},{y + 1},60,80,1,1,1\n")
            Image.fromarray(frame).save(os.path.join(src, f"{t:05d}.jpg"), quality=90)
            if t == 0:
                im = Image.fromarray(label, mode="P")
                im.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * 756)
                im.save(os.path.join(src, "00000.png"))
        with open(os.path.join(src, "gt.txt"), "w") as f:
            f.writelines(gt)
        open(done, "w").close()
    with open(os.path.join(src, "gt.txt")) as f:
        gt_rows = f.readlines()
    for n in lengths:
        base = os.path.join(root, str(n))
        if os.path.isdir(base):
            continue
        img = os.path.join(base, "davis", "JPEGImages", "480p", "long")
        ann = os.path.join(base, "davis", "Annotations", "480p", "long")
        mot = os.path.join(base, "mot", "LONG-01")
        for d in (img, ann, os.path.join(base, "davis", "ImageSets", "2017"),
                  os.path.join(mot, "img1"), os.path.join(mot, "gt")):
            os.makedirs(d)
        with open(os.path.join(base, "davis", "ImageSets", "2017", "val.txt"), "w") as f:
            f.write("long\n")
        os.symlink(os.path.join(src, "00000.png"), os.path.join(ann, "00000.png"))
        for t in range(n):
            os.symlink(os.path.join(src, f"{t:05d}.jpg"), os.path.join(img, f"{t:05d}.jpg"))
            os.symlink(os.path.join(src, f"{t:05d}.jpg"), os.path.join(mot, "img1", f"{t + 1:06d}.jpg"))
        with open(os.path.join(mot, "gt", "gt.txt"), "w") as f:
            f.writelines(r for r in gt_rows if int(r.split(",")[0]) <= n)


PEAK = """
import resource, sys, time
sys.path.insert(0, {baseline!r})
from {pkg}.run import TrackConfig, run_tracking
from {pkg}.adapter import build_adapter
t0 = time.perf_counter()
res = run_tracking({task!r}, {data!r}, encoder=build_adapter(pixels=True),
                   config=TrackConfig(mot_detections="gt")) if {task!r} else None
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, (hwm or [-1])[0],
      time.perf_counter() - t0, res["speed"]["frames"] if res else 0)
"""


def peak_rss(pkg: str, task: str, data: str, baseline: str) -> dict:
    code = PEAK.format(baseline=baseline, pkg=pkg, task=task, data=data)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # through sh, which forks the child: a child forked (or vforked) from this process would
    # inherit this process's high-water mark into its ru_maxrss
    out = subprocess.run(["sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, code],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "rc": out.returncode}
    kb, hwm, secs, frames = out.stdout.split()[-4:]
    return {"peak_rss_mb": int(kb) / 1024, "vm_hwm_mb": int(hwm) / 1024, "seconds": float(secs),
            "frames": int(frames)}


# ---------------------------------------------------------------------------------- main --
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="git revision of the whole-sequence code")
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--long-dir", default=os.path.join(tempfile.gettempdir(), "vidssl_track_long"))
    p.add_argument("--long-frames", type=int, default=600)
    p.add_argument("--long-size", default="640x480")
    p.add_argument("--mot-lengths", default="150,300,600")
    p.add_argument("--vos-lengths", default="60,180")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: equality,speed,memory")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if not os.path.isdir(os.path.join(args.data, "tracking")):
        from vidssl.cli import main as cli

        if cli(["make-synthetic", "--out", args.data]):
            sys.exit(2)
    tmp = tempfile.mkdtemp(prefix="track_baseline_")
    extract_baseline(args.baseline, tmp)
    sys.path.insert(0, tmp)
    import baseline_track.adapter as old_adapter
    import baseline_track.run as old_run

    import vidssl.track.adapter as new_adapter
    import vidssl.track.run as new_run
    from vidssl.config import load_config

    result = {"argv": sys.argv[1:], "baseline": args.baseline, "data": os.path.abspath(args.data),
              "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine()}

    if "equality" not in skip:
        runs = [("vos", []), ("vos", ["frame_scale=2"]), ("mot", []),
                ("mot", ["mot_detections=gt", "frame_scale=2"]), ("sot", []),
                ("sot", ["sot.method=dcf"])]
        rows = []
        for name in ("pixels", "r3d_tiny"):
            new, old = adapters(new_adapter, old_adapter, name)
            for task, ov in runs:
                a = old_run.run_tracking(task, args.data, encoder=old,
                                         config=load_config(old_run.TrackConfig, None, ov))
                b = new_run.run_tracking(task, args.data, encoder=new,
                                         config=load_config(new_run.TrackConfig, None, ov))
                rows.append({"appearance": name, "task": task, "settings": ov,
                             "identical": comparable(a) == comparable(b),
                             "summary": b["summary"]})
                print("equality", name, task, ov, rows[-1]["identical"], flush=True)
        result["equality"] = rows

    if "speed" not in skip:
        fps: dict[str, list[float]] = {}
        pairs = {name: adapters(new_adapter, old_adapter, name) for name in ("pixels", "r3d_tiny")}
        for r in range(-1, args.rounds):  # round -1: warm-up, not counted
            for name, (new, old) in pairs.items():
                for task in ("vos", "mot"):
                    versions = [("baseline", old_run, old), ("streaming", new_run, new)]
                    for version, mod, ad in versions[::1 if r % 2 else -1]:  # order alternates
                        res = mod.run_tracking(task, args.data, encoder=ad)
                        if r < 0:
                            continue
                        fps.setdefault(f"{name} {task} {version}", []).append(
                            res["speed"]["frames_per_s"])
                        print(f"round {r} {name} {task} {version}: "
                              f"{res['speed']['frames_per_s']:.1f} frames/s", flush=True)
        med = {k: statistics.median(v) for k, v in fps.items()}
        result["speed"] = {"rounds": args.rounds, "frames_per_s_all": fps, "median": med,
                           "ratio": {k[:-len(" streaming")]: med[k] / med[k.replace("streaming", "baseline")]
                                     for k in med if k.endswith("streaming")}}

    if "memory" not in skip:
        w, h = (int(v) for v in args.long_size.split("x"))
        mot_n = [int(v) for v in args.mot_lengths.split(",") if v]
        vos_n = [int(v) for v in args.vos_lengths.split(",") if v]
        write_long(args.long_dir, args.long_frames, w, h, sorted(set(mot_n + vos_n)))
        mem = [{"task": "(imports only)", "version": v,
                **peak_rss(pkg, "", "", tmp)} for v, pkg in (("baseline", "baseline_track"),
                                                             ("streaming", "vidssl.track"))]
        for task, lengths in (("mot", mot_n), ("vos", vos_n)):
            for n in lengths:
                data = os.path.join(args.long_dir, str(n), "davis" if task == "vos" else "mot")
                for v, pkg in (("baseline", "baseline_track"), ("streaming", "vidssl.track")):
                    t0 = time.perf_counter()
                    mem.append({"task": task, "frames": n, "version": v,
                                **peak_rss(pkg, task, data, tmp)})
                    print("memory", mem[-1], f"{time.perf_counter() - t0:.0f}s", flush=True)
        result["memory"] = {"size": args.long_size, "runs": mem}

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "track_streaming.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = ["# Streaming tracking vs whole-sequence tracking", "",
             f"`{' '.join(['python', 'benchmarks/track_streaming.py', *sys.argv[1:]])}`; CPU, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}.", ""]
    if "equality" in result:
        same = sum(r["identical"] for r in result["equality"])
        lines += [f"Equality: {same} of {len(result['equality'])} runs (pixels, r3d_tiny x VOS, "
                  f"MOT, SOT settings) give identical results JSON.", ""]
    if "speed" in result:
        lines += [f"Speed (frames/s, median of {args.rounds} interleaved rounds, synthetic set):", "",
                  "| run | baseline | streaming | ratio |", "|---|---|---|---|"]
        med = result["speed"]["median"]
        for k, ratio in result["speed"]["ratio"].items():
            lines.append(f"| {k} | {med[k + ' baseline']:.1f} | {med[k + ' streaming']:.1f} | "
                         f"{ratio:.2f} |")
        lines.append("")
    if "memory" in result:
        lines += [f"Peak RSS (MB, ru_maxrss of a fresh process; VmHWM in brackets; pixels "
                  f"appearance, {args.long_size} JPEG):", "",
                  "| task | frames | baseline | streaming |", "|---|---|---|---|"]
        runs = result["memory"]["runs"]
        keys = []
        for r in runs:
            if (r["task"], r.get("frames")) not in keys:
                keys.append((r["task"], r.get("frames")))
        for task, n in keys:
            cell = {r["version"]: (f"{r['peak_rss_mb']:.0f} ({r['vm_hwm_mb']:.0f})"
                                   if "peak_rss_mb" in r else r["error"])
                    for r in runs if r["task"] == task and r.get("frames") == n}
            lines.append(f"| {task} | {n or '-'} | {cell.get('baseline')} | {cell.get('streaming')} |")
    with open(os.path.join(args.out, "track_streaming.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
