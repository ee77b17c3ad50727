"""MOT association on the synthetic tracking set: reconstruction-similarity form x temperature.

    python benchmarks/track_reconstruction.py --checkpoint runs/pretrain/tclr_track/checkpoints/last.pt \
        [--data data/synthetic] [--out benchmarks/results]

``association.reconstruction`` = ``joint`` (UniTrack's cross-softmax over all detections, the
default) or ``pair`` (a softmax per (track, detection) pair, the form vidssl shipped first), at
temperature 0.01 (UniTrack's, the default) and 0.05 (what ``pair`` ran at), with
``association.motion=none`` so appearance decides, on ground-truth boxes and on det.txt. Same
appearance models as track_quality.py (random encoders after torch.manual_seed(0)). Writes
track_reconstruction.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from track_quality import appearances  # noqa: E402
from vidssl.config import load_config  # noqa: E402
from vidssl.track import TrackConfig, build_adapter, run_tracking  # noqa: E402

FORMS = [("joint", 0.01), ("joint", 0.05), ("pair", 0.01), ("pair", 0.05)]
DETECTIONS = [("gt boxes", ["mot_detections=gt"]), ("det.txt", [])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    rows = []
    for name, source in appearances(args.checkpoint):
        torch.manual_seed(0)
        kw = {k: v for k, v in source.items() if k != "encoder"}
        adapter = build_adapter(source.get("encoder"), **kw)
        for det_label, det in DETECTIONS:
            for form, temp in FORMS:
                cfg = load_config(TrackConfig, None, det + [
                    "association.motion=none", f"association.reconstruction={form}",
                    f"association.temperature={temp}"])
                s = run_tracking("mot", args.data, encoder=adapter, config=cfg)["summary"]
                rows.append({"appearance": name, "detections": det_label, "reconstruction": form,
                             "temperature": temp, "summary": s})
                print(name, det_label, form, temp, f"IDF1 {s['idf1']:.3f} MOTA {s['mota']:.3f} "
                      f"IDsw {int(s['num_switches'])}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "track_reconstruction.json"), "w") as f:
        json.dump({"data": os.path.abspath(args.data), "torch": torch.__version__,
                   "rows": rows}, f, indent=2)
    head = " | ".join(f"{d}: {f} {t}" for d, _ in DETECTIONS for f, t in FORMS)
    lines = ["# MOT association: reconstruction form x temperature (motion=none)", "",
             f"`python benchmarks/track_reconstruction.py --checkpoint {args.checkpoint}` "
             f"(data: {args.data}). IDF1 / MOTA (ID switches); default: joint 0.01.", "",
             f"| appearance | {head} |", "|---" * (1 + len(DETECTIONS) * len(FORMS)) + "|"]
    for name, _ in appearances(args.checkpoint):
        cells = []
        for d, _ in DETECTIONS:
            for form, temp in FORMS:
                s = next(r["summary"] for r in rows if r["appearance"] == name and
                         r["detections"] == d and r["reconstruction"] == form and
                         r["temperature"] == temp)
                cells.append(f"{s['idf1']:.3f} / {s['mota']:.3f} ({int(s['num_switches'])})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(os.path.join(args.out, "track_reconstruction.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
