"""``vidssl track``: evaluate an appearance model on VOS, SOT or MOT with the UniTrack heads.

    vidssl track --task vos --encoder r3d_tiny --data data/synthetic --out runs/track/vos
    vidssl track --task mot --checkpoint runs/pretrain/tclr/checkpoints/last.pt --data data/synthetic
    vidssl track --task sot --pixels --data /data/OTB100 sot.method=dcf
    vidssl track --task vos --encoder resnet18 --pretrained imagenet --data /data/DAVIS

Settings: ``--config configs/track/X.yaml`` and ``KEY=VALUE`` overrides over
:class:`~vidssl.track.run.TrackConfig` (sections ``adapter propagation association sot``).
"""

from __future__ import annotations

import argparse
import os
import sys

from vidssl.errors import ConfigError, VidsslError

__all__ = ["add_track_parser", "cmd_track"]


def add_track_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``track`` sub-command to a ``vidssl`` sub-parser set; returns its parser."""
    p = subparsers.add_parser(
        "track", help="VOS / SOT / MOT with UniTrack's training-free heads",
        description="Track with any vidssl encoder (or an ImageNet ResNet, or raw pixels) as "
                    "the appearance model: label propagation (vos), cross-correlation or DCF "
                    "(sot), association (mot). Writes results.json and PNG strips to --out.")
    from vidssl.runtime.rundir import add_result_options

    p.add_argument("--task", required=True, choices=["vos", "sot", "mot"])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--encoder", help="a registered encoder (e.g. r3d_tiny) or resnet18/resnet50")
    src.add_argument("--checkpoint", help="a vidssl training checkpoint (its encoder)")
    src.add_argument("--pixels", action="store_true", help="RGB pixels as features (baseline)")
    p.add_argument("--pretrained", help="with --encoder: weights ('default', 'imagenet', a path)")
    p.add_argument("--data", required=True,
                   help="synthetic dataset root, or a DAVIS / MOT / OTB folder")
    add_result_options(p, config_of="TrackConfig",
                       out_default="runs/track/<task>_<run>_step<N> for a checkpoint, "
                                   "runs/track/<task>_<encoder>_seed<S> otherwise",
                       overrides_example="propagation.topk=5 association.motion=none sot.method=dcf")
    p.set_defaults(func=cmd_track)
    return p


def cmd_track(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vidssl.config import load_config
    from vidssl.track.run import TrackConfig, run_tracking, summary_line

    cfg = load_config(TrackConfig, args.config, args.overrides)
    if args.device:
        cfg.device = args.device
    cfg.validate()
    if args.pretrained and not args.encoder:
        raise ConfigError("--pretrained goes with --encoder")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise VidsslError(f"checkpoint not found: {args.checkpoint}")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise VidsslError(f"--out {args.out} exists and is not a folder")
    import torch

    from vidssl.provenance import provenance
    from vidssl.runtime.rundir import claim_run_dir, source_label

    torch.manual_seed(args.seed)  # a random-init encoder is the same on every run of the command
    origin = None
    if args.checkpoint:
        from vidssl.models.checkpoint import checkpoint_origin

        origin = checkpoint_origin(args.checkpoint)
    label = "pixels" if args.pixels else source_label(origin=origin, encoder=args.encoder,
                                                      pretrained=args.pretrained, seed=args.seed)
    out = args.out or os.path.join("runs", "track", f"{args.task}_{label}")
    with claim_run_dir(out, if_exists="overwrite" if args.overwrite else "version",
                       what="tracking evaluation") as out:
        prov = provenance(run=origin["run"] if origin else None,
                          checkpoint_step=origin["step"] if origin else None,
                          training=origin["provenance"] if origin else None, seed=args.seed)
        results = run_tracking(args.task, args.data, encoder=args.encoder, checkpoint=args.checkpoint,
                               pixels=args.pixels, pretrained=args.pretrained, out=out,
                               config=cfg, progress=not args.quiet, provenance=prov)
    args.out = out
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    console.print(summary_line(results), markup=False, soft_wrap=True)
    console.print(f"wrote {os.path.join(args.out, 'results.json')} and "
                  f"{len(results['visualizations'])} PNG strip(s) under {os.path.join(args.out, 'vis')}",
                  markup=False, soft_wrap=True)
    return 0
