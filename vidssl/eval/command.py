"""``vidssl eval``: evaluate a checkpoint or a registered encoder, write results.json + results.md.

    vidssl eval --encoder r3d_tiny --dataset synthetic --root data/synthetic --protocol linear,knn
    vidssl eval --checkpoint runs/cvrl/checkpoints/last.pt --dataset ucf101 --root /data/UCF101   # -> runs/eval/cvrl_step<N>
    vidssl eval --encoder r3d_tiny --dataset synthetic --root data/synthetic knn.k=10 --splits 1
    vidssl eval --checkpoint runs/lss/checkpoints/last.pt --dataset ucf101 --root /data/UCF101 --protocol zeroshot

Settings: ``--config X.yaml`` and ``KEY=VALUE`` overrides over :class:`EvalConfig` (sections
``features linear knn retrieval finetune diagnostics zeroshot bn intervals attentive presets``,
plus ``device``); unknown keys are one-line errors. A preset's settings are overridden as
``presets.linear:tclr.epochs=2`` or, shorter, ``linear:tclr.epochs=2``. Overrides may stand
anywhere after ``eval`` (``--splits 1 knn.k=10`` works).
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
        "eval", help="linear / kNN / retrieval / finetune / attentive / the papers' protocols / zero-shot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate an encoder on the train/test splits of a dataset and write "
                    "results.json and results.md to --out (the table is also printed; accuracies "
                    "with 95%% bootstrap intervals over the test videos). KEY=VALUE overrides may "
                    "stand anywhere after `eval`.",
        epilog=protocol_help())
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="a vidssl training checkpoint (its encoder is evaluated)")
    src.add_argument("--encoder", help="a registered encoder name (e.g. r3d_tiny)")
    p.add_argument("--pretrained", help="weights: with --encoder 'default', a path, ...; alone, a "
                                        "folder written by vidssl export, hf:ORG/NAME, or published "
                                        "weights: torchvision:NAME, videomae:HUB_ID|DIR, "
                                        "vjepa2:HUB_ID|DIR, tclr:FILE, coclr:FILE")
    p.add_argument("--protocol", action="append", metavar="NAME",
                   help="a protocol or preset below, or all; repeat or comma-separate (default: all = "
                        f"{','.join(PROTOCOLS.names(sort=False, in_all=True))})")
    from vidssl.data.index import DATASETS

    p.add_argument("--dataset", required=True, choices=DATASETS.names(),
                   help=f"{', '.join(eval_datasets())} (official splits); a dataset without splits "
                        f"(kinetics_csv, folder) takes only --protocol classify")
    p.add_argument("--root", required=True, help="dataset folder")
    p.add_argument("--index-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the dataset's index builder, e.g. csv=val.csv subset=val for "
                        "kinetics_csv (repeat)")
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


def protocol_help() -> str:
    """The protocols and presets with their one-line summaries (``vidssl eval --help``)."""
    from vidssl.eval.protocols import PROTOCOLS

    lines = ["protocols (--protocol NAME; presets follow their authors' released code, see "
             "docs/evaluation.md):"]
    for name in PROTOCOLS.names(sort=False):
        info = PROTOCOLS.info(name)
        tag = "" if info.get("in_all") else " [not in all]"
        lines.append(f"  {name:<18} {info.get('summary') or ''}{tag}")
    lines += ["  linear:fast        = linear",
              "",
              "BatchNorm of frozen encoders: bn.mode=keep (default) | recompute (precise BN on each split's",
              "train clips). A preset's settings: linear:tclr.epochs=2 (= presets.linear:tclr.epochs=2)."]
    return "\n".join(lines)


def preset_overrides(overrides: list[str]) -> list[str]:
    """``linear:tclr.epochs=2`` -> ``presets.linear:tclr.epochs=2`` (other overrides unchanged)."""
    from vidssl.eval.presets import PRESETS

    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        head = key.split(".", 1)[0]
        out.append(f"presets.{o}" if head in PRESETS and "." in key else o)
    return out


def load_eval_encoder(args: argparse.Namespace):
    """The encoder named by ``--checkpoint``, ``--encoder [--pretrained]`` or ``--pretrained``
    alone (an exported folder or ``hf:`` reference; one-line errors)."""
    if not (args.checkpoint or args.encoder or args.pretrained):
        raise ConfigError("name the encoder: --checkpoint PATH, --encoder NAME [--pretrained W], "
                          "or --pretrained EXPORTED_FOLDER|hf:ORG/NAME|SOURCE:REF")
    from vidssl.models.importers import is_published_ref

    if args.pretrained and is_published_ref(args.pretrained):
        if args.checkpoint or args.encoder:
            raise ConfigError(f"--pretrained {args.pretrained} names its own architecture; drop --encoder / --checkpoint")
        from vidssl.models.importers import load_published

        return load_published(args.pretrained), args.pretrained
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

    cfg = load_config(EvalConfig, args.config, preset_overrides(list(args.overrides))).validate()
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
    index_kwargs = {}
    for item in args.index_arg:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ConfigError(f"--index-arg {item!r} is not KEY=VALUE")
        index_kwargs[k.strip()] = v
    if index_kwargs:
        from vidssl.data.index import check_dataset_arguments

        check_dataset_arguments(args.dataset, index_kwargs)
    out = args.out or os.path.join("runs", "eval", label)
    with claim_run_dir(out, if_exists="overwrite" if args.overwrite else "version",
                       what="evaluation") as out:
        results = evaluate(encoder, dataset=args.dataset, root=args.root, splits=args.splits,
                           protocols=protocols, config=cfg, device=args.device,
                           progress=not args.quiet, encoder_name=label, zeroshot=zeroshot,
                           index_kwargs=index_kwargs)
        results.info["source"] = {"checkpoint": args.checkpoint, "encoder": args.encoder,
                                  "pretrained": args.pretrained, "seed": args.seed}
        if index_kwargs:
            results.info["source"]["index_args"] = index_kwargs
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
