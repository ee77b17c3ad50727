"""Tracking quality on the synthetic tracking set: VOS J&F, MOT MOTA / IDF1, SOT success AUC.

    python benchmarks/track_quality.py --checkpoint runs/pretrain/tclr_track/checkpoints/last.pt \
        [--data data/synthetic] [--out benchmarks/results]

Appearance models: RGB pixels (baseline), random-init encoders (seeded: torch.manual_seed(0)
before building), and the encoder of a vidssl pretraining checkpoint. Every number comes from
``vidssl.track.run_tracking`` with the default (UniTrack) settings unless the row says otherwise.
Writes track_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from vidssl.config import load_config  # noqa: E402
from vidssl.track import TrackConfig, build_adapter, run_tracking  # noqa: E402


def appearances(checkpoint: str | None) -> list[tuple[str, dict]]:
    out = [("pixels (RGB)", {"pixels": True}),
           ("r3d_tiny, random init", {"encoder": "r3d_tiny"}),
           ("r3d_18, random init", {"encoder": "r3d_18"}),
           ("resnet18 (2D), random init", {"encoder": "resnet18"})]
    if checkpoint:
        out.append((f"pretrained: {checkpoint}", {"checkpoint": checkpoint}))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    runs = [("vos", [], "J&F"), ("vos", ["frame_scale=2"], "J&F x2"), ("mot", ["mot_detections=gt"], "gt boxes"),
            ("mot", ["mot_detections=gt", "association.motion=none"], "gt boxes, motion=none"),
            ("mot", [], "det.txt"), ("mot", ["association.motion=none"], "det.txt, motion=none"),
            ("sot", [], "xcorr"), ("sot", ["sot.method=dcf"], "dcf")]
    rows = []
    for name, source in appearances(args.checkpoint):
        torch.manual_seed(0)
        kw = {k: v for k, v in source.items() if k != "encoder"}
        adapter = build_adapter(source.get("encoder"), **kw)
        for task, overrides, label in runs:
            t0 = time.perf_counter()
            res = run_tracking(task, args.data, encoder=adapter,
                               config=load_config(TrackConfig, None, overrides))
            rows.append({"appearance": name, "task": task, "setting": label,
                         "summary": res["summary"], "seconds": time.perf_counter() - t0})
            print(name, task, label, {k: round(v, 3) for k, v in res["summary"].items()},
                  flush=True)
    result = {"data": os.path.abspath(args.data), "torch": torch.__version__, "rows": rows,
              "cpu_threads": torch.get_num_threads()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "track_quality.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = ["# Tracking quality on the synthetic tracking set", "",
             f"`python benchmarks/track_quality.py --checkpoint {args.checkpoint}` "
             f"(data: {args.data}; UniTrack settings unless noted).", "",
             "| appearance | VOS J&F (J / F) | VOS J&F, frame_scale=2 | MOT gt boxes IDF1 / MOTA "
             "| same, motion=none | MOT det.txt IDF1 / MOTA | same, motion=none | SOT AUC xcorr "
             "| SOT AUC dcf |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, _ in appearances(args.checkpoint):
        r = {row["setting"]: row["summary"] for row in rows if row["appearance"] == name}
        v = r["J&F"]

        def mot(s):
            return f"{s['idf1']:.3f} / {s['mota']:.3f}"

        v2 = r["J&F x2"]
        lines.append(f"| {name} | {v['J&F']:.3f} ({v['J']:.3f} / {v['F']:.3f}) | "
                     f"{v2['J&F']:.3f} ({v2['J']:.3f} / {v2['F']:.3f}) | "
                     f"{mot(r['gt boxes'])} | {mot(r['gt boxes, motion=none'])} | "
                     f"{mot(r['det.txt'])} | {mot(r['det.txt, motion=none'])} | "
                     f"{r['xcorr']['auc']:.3f} | {r['dcf']['auc']:.3f} |")
    with open(os.path.join(args.out, "track_quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
