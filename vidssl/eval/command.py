"""``vidssl eval``: evaluate a checkpoint or a registered encoder, write results.json + results.md.

    vidssl eval --encoder r3d_tiny --dataset synthetic --root data/synthetic --protocol linear,knn
    vidssl eval --checkpoint runs/cvrl/checkpoints/last.pt --dataset ucf101 --root /data/UCF101   # -> runs/eval/cvrl_step<N>
    vidssl eval --encoder r3d_tiny --dataset synthetic --root data/synthetic knn.k=10 --splits 1
    vidssl eval --checkpoint runs/lss/checkpoints/last.pt --dataset ucf101 --root /data/UCF101 --protocol zeroshot

Settings: ``--config X.yaml`` and ``KEY=VALUE`` overrides over :class:`EvalConfig` (sections
``features linear knn retrieval finetune diagnostics zeroshot``, plus ``device``); unknown keys are
one-line errors. Overrides may stand anywhere after ``eval`` (``--splits 1 knn.k=10`` works).
"""

from __future__ import annotations

import argparse
import os
import sys

from vidssl.errors import ConfigError, VidsslError

__all__ = ["add_eval_parser", "cmd_eval", "load_eval_encoder"]


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to a ``vidssl`` sub-parser set; returns its parser."""
    from vidssl.eval.protocols import PROTOCOLS
    from vidssl.eval.run import eval_datasets

    p = subparsers.add_parser(
        "eval", help="linear / kNN / retrieval / finetune / diagnostics / zero-shot evaluation",
        description="Evaluate an encoder on the train/test splits of a dataset and write "
                    "results.json and results.md to --out (the table is also printed). "
                    "KEY=VALUE overrides may stand anywhere after `eval`.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="a vidssl training checkpoint (its encoder is evaluated)")
    src.add_argument("--encoder", help="a registered encoder name (e.g. r3d_tiny)")
    p.add_argument("--pretrained", help="weights: with --encoder 'default', a path, ...; alone, a "
                                        "folder written by vidssl export or hf:ORG/NAME")
    p.add_argument("--protocol", action="append", metavar="NAME",
                   help=f"{'|'.join(PROTOCOLS.names(sort=False))}|all; repeat or comma-separate (default: all = "
                        f"every protocol but zeroshot)")
    p.add_argument("--dataset", required=True, choices=eval_datasets())
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--splits", type=int, nargs="+", default=None, metavar="N",
                   help="official splits to evaluate (default: 1 2 3)")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/eval/<run>_step<N> for a checkpoint, "
                        "runs/eval/<encoder>[_<weights>]_seed<S> otherwise); a folder holding "
                        "earlier results is never overwritten: the next free <out>_vN is used")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the random init of an encoder without weights (%(default)s)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: config's)")
    p.add_argument("--config", help="YAML file of EvalConfig settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="settings, e.g. knn.k=10 features.num_crops=3 finetune.epochs=2")
    p.set_defaults(func=cmd_eval)
    return p


def load_eval_encoder(args: argparse.Namespace):
    """The encoder named by ``--checkpoint``, ``--encoder [--pretrained]`` or ``--pretrained``
    alone (an exported folder or ``hf:`` reference; one-line errors)."""
    if not (args.checkpoint or args.encoder or args.pretrained):
        raise ConfigError("name the encoder: --checkpoint PATH, --encoder NAME [--pretrained W], "
                          "or --pretrained EXPORTED_FOLDER|hf:ORG/NAME")
    if not (args.checkpoint or args.encoder):
        from vidssl.models.export import load_exported_encoder

        return load_exported_encoder(args.pretrained), os.path.basename(os.path.normpath(args.pretrained))
    if args.checkpoint:
        if args.pretrained:
            raise ConfigError("--pretrained goes with --encoder, not with --checkpoint")
        if not os.path.isfile(args.checkpoint):
            raise VidsslError(f"checkpoint not found: {args.checkpoint}")
        from vidssl.models.checkpoint import load_encoder

        return load_encoder(args.checkpoint, map_location="cpu"), os.path.basename(args.checkpoint)
    from vidssl.models.encoders import create_encoder

    kwargs = {"pretrained": args.pretrained} if args.pretrained else {}
    return create_encoder(args.encoder, **kwargs), args.encoder


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from vidssl.config import load_config
    from vidssl.eval.config import EvalConfig
    from vidssl.eval.run import evaluate
    from vidssl.provenance import provenance
    from vidssl.runtime.rundir import claim_run_dir, source_label

    cfg = load_config(EvalConfig, args.config, args.overrides).validate()
    if not os.path.isdir(args.root):
        raise VidsslError(f"dataset root {args.root} does not exist")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise VidsslError(f"--out {args.out} exists and is not a folder")
    torch.manual_seed(args.seed)  # a random-init encoder is the same on every run of the command
    encoder, name = load_eval_encoder(args)
    origin = None
    if args.checkpoint:
        from vidssl.models.checkpoint import checkpoint_origin

        origin = checkpoint_origin(args.checkpoint)
    label = source_label(origin=origin, encoder=args.encoder, pretrained=args.pretrained, seed=args.seed)
    from vidssl.eval.protocols import resolve_protocols

    protocols = resolve_protocols(args.protocol or "all")
    zeroshot = None
    if "zeroshot" in protocols and args.checkpoint:   # LSS: its head and concept-space text tower
        from vidssl.eval.zeroshot import zeroshot_spec_from_checkpoint

        zeroshot = zeroshot_spec_from_checkpoint(args.checkpoint)
    out = args.out or os.path.join("runs", "eval", label)
    with claim_run_dir(out, if_exists="overwrite" if args.overwrite else "version",
                       what="evaluation") as out:
        results = evaluate(encoder, dataset=args.dataset, root=args.root, splits=args.splits,
                           protocols=protocols, config=cfg, device=args.device,
                           progress=not args.quiet, encoder_name=label, zeroshot=zeroshot)
        results.info["source"] = {"checkpoint": args.checkpoint, "encoder": args.encoder,
                                  "pretrained": args.pretrained, "seed": args.seed}
        results.info["provenance"] = provenance(
            run=origin["run"] if origin else None, checkpoint_step=origin["step"] if origin else None,
            training=origin["provenance"] if origin else None, seed=args.seed, dataset=results.dataset,
            split_hash=results.info.get("split_hash"))
        json_path = results.to_json(os.path.join(out, "results.json"))
        md_path = os.path.join(out, "results.md")
        with open(md_path, "w", encoding="utf-8") as f:
            f.write(results.to_markdown())
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    console.print(results.to_markdown(), markup=False, soft_wrap=True)  # no wrapped table rows
    console.print(f"wrote {json_path} and {md_path}", markup=False, soft_wrap=True)
    return 0
