#!/usr/bin/env python
"""Precompute optical flow videos for CoCLR's ``second_modality: flow_video``.

    python tools/precompute_flow.py --root data/ucf101/UCF-101 --out data/ucf101_flow/UCF-101

Writes, for every .avi/.mp4 under --root, a flow video (RAFT from torchvision, the paper's
3-channel encoding: u, v clipped to +-20 px and the magnitude) at the same relative path under
--out; then train with ``data.paired_root=<out>`` and ``method.params.second_modality=flow_video``
(``data.root`` must then be the folder that --root mirrors). Re-running keeps finished files.
"""

from __future__ import annotations

import argparse
import sys

from vidssl.errors import VidsslError
from vidssl.models.flow import RAFT_MODELS, precompute_flow_videos


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--out", required=True, help="where the flow videos go (same relative paths)")
    p.add_argument("--model", default="raft_small", choices=RAFT_MODELS)
    p.add_argument("--weights", default="default",
                   help="'default' (torchvision's published weights), a state-dict path, or 'none' "
                        "(random init: for testing the pipeline only)")
    p.add_argument("--updates", type=int, default=12, help="RAFT refinement iterations (%(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (%(default)s)")
    p.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        summary = precompute_flow_videos(
            args.root, args.out, model=args.model, weights=None if args.weights == "none" else args.weights,
            num_flow_updates=args.updates, device=args.device, overwrite=args.overwrite,
            progress=not args.quiet)
    except VidsslError as err:
        print(f"precompute_flow: error: {err}", file=sys.stderr)
        return 2
    print(f"flow videos: {summary['written']} written, {summary['kept']} kept, "
          f"{len(summary['failed'])} failed")
    for path, reason in summary["failed"][:10]:
        print(f"  failed: {path}: {reason}")
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
