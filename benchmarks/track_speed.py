"""Tracking speed: frames/s per task (VOS, SOT, MOT) for pixels vs encoders, one process.

    python benchmarks/track_speed.py [--data data/synthetic] [--rounds 3] [--out benchmarks/results]

Each round runs every (appearance, task) pair once over the synthetic tracking set, in
interleaved order, through ``vidssl.track.run_tracking`` (frame reading + feature extraction +
head + metrics); the median frames/s over rounds is reported, with the ratio to the pixel
baseline measured in the same process. Writes track_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from vidssl.track import build_adapter, run_tracking  # noqa: E402

APPEARANCES = [("pixels", {"pixels": True}), ("r3d_tiny", {"encoder": "r3d_tiny"}),
               ("resnet18", {"encoder": "resnet18"}), ("r3d_18", {"encoder": "r3d_18"})]
TASKS = ("vos", "sot", "mot")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    if not os.path.isdir(os.path.join(args.data, "tracking")):
        from vidssl.cli import main as cli

        if cli(["make-synthetic", "--out", args.data]):
            sys.exit(2)
    torch.manual_seed(0)
    adapters = {name: build_adapter(src.get("encoder"), pixels=src.get("pixels", False))
                for name, src in APPEARANCES}
    fps: dict[str, dict[str, list[float]]] = {n: {t: [] for t in TASKS} for n in adapters}
    frames: dict[str, int] = {}
    for r in range(args.rounds):
        for task in TASKS:
            for name, adapter in adapters.items():
                res = run_tracking(task, args.data, encoder=adapter)
                fps[name][task].append(res["speed"]["frames_per_s"])
                frames[task] = res["speed"]["frames"]
                print(f"round {r} {task} {name}: {fps[name][task][-1]:.1f} frames/s", flush=True)
    med = {n: {t: statistics.median(v) for t, v in d.items()} for n, d in fps.items()}
    result = {"data": os.path.abspath(args.data), "rounds": args.rounds, "frames": frames,
              "frames_per_s_median": med, "frames_per_s_all": fps,
              "ratio_to_pixels": {n: {t: med[n][t] / med["pixels"][t] for t in TASKS} for n in med},
              "device": "cpu", "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "track_speed.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = ["# Tracking speed (frames/s, CPU)", "",
             f"`python benchmarks/track_speed.py --rounds {args.rounds}`: median of {args.rounds} "
             f"interleaved rounds over the synthetic tracking set (128x128 frames; VOS "
             f"{frames['vos']}, SOT {frames['sot']}, MOT {frames['mot']} frames), "
             f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}. Reading frames, "
             f"features, head and metrics; ratio = vs pixels, same process.", "",
             "| appearance | VOS | SOT (xcorr) | MOT (det.txt) |", "|---|---|---|---|"]
    for n in med:
        cells = [f"{med[n][t]:.1f} ({result['ratio_to_pixels'][n][t]:.2f}x)" for t in TASKS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    with open(os.path.join(args.out, "track_speed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
