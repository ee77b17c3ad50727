"""The ``vidssl`` command line. Each sub-command is a thin layer over the Python API.

    vidssl demo                     the quick-start job on the embedded synthetic dataset
    vidssl make-synthetic           write the synthetic action + tracking dataset
    vidssl index DATASET --root R   build (and cache) a video index, print a summary table
    vidssl configs [NAME]           list / print / copy the configs that ship with vidssl
    vidssl export --checkpoint P    an encoder as a Hub-style folder (safetensors + model card)
    vidssl pretrain --config C      self-supervised pretraining (DDP under torchrun)
    vidssl eval --checkpoint P      linear / kNN / retrieval / finetune / diagnostics / zeroshot
    vidssl compare                  every method, one budget, one protocol, one table
    vidssl concepts generate|encode LLM attribute prompts; CLIP concept spaces
    vidssl track --task vos|sot|mot tracking with UniTrack's heads on any encoder
    vidssl bench decode|train|soak|gpu  decode throughput; data-pipeline efficiency; memory soak;
                                    CPU vs NVDEC decoding and the GPU step

Errors that are the user's to fix (bad path, corrupt file, unknown key, missing package) print
one line and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import re
import sys
import time
from typing import Sequence

from vidssl.data.synthetic.options import SyntheticOptions
from vidssl.errors import VidsslError

log = logging.getLogger("vidssl")

DEFAULT_SYNTHETIC_ROOT = os.path.join("data", "synthetic")


def _console():
    from rich.console import Console

    # Not a terminal (logs, CI, pipes): a fixed width wide enough for the summary tables.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    from vidssl.security import RedactingFilter

    handler = RichHandler(show_path=False, show_time=False, markup=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)


# ---------------------------------------------------------------- make-synthetic
def cmd_make_synthetic(args: argparse.Namespace) -> int:
    from vidssl.config import load_config
    from vidssl.data.synthetic import make_synthetic

    opts = load_config(SyntheticOptions, args.config, args.overrides)
    summary = make_synthetic(args.out, overwrite=args.overwrite, workers=args.workers,
                             progress=not args.quiet, **dataclasses.asdict(opts))
    _console().print(summary.describe())
    return 0


# ---------------------------------------------------------------- index
def _index_kwargs(args: argparse.Namespace) -> dict:
    """The builder's keyword arguments from ``vidssl index DATASET`` flags (only the flags given,
    so the builder's own defaults apply); a required argument left out is one line."""
    from vidssl.data.index import dataset_arguments

    accepted = dataset_arguments(args.dataset)
    kw: dict = {"backend": args.backend, "workers": args.workers, "progress": not args.quiet}
    for name, default in accepted.items():
        value = getattr(args, name, None) if name not in kw else None
        if value is not None:
            kw[name] = value
        elif default is inspect.Parameter.empty:
            raise VidsslError(f"{args.dataset} needs --{name.replace('_', '-')} "
                              f"{name.upper() if name != 'csv' else 'PATH'}")
    if args.no_cache:
        kw["cache"] = False
    return kw


def builder_argument_help(builder) -> dict[str, str]:
    """``{argument: one-paragraph help}`` from the ``Args:`` section of a builder's docstring."""
    doc = inspect.getdoc(builder) or ""
    out: dict[str, str] = {}
    current: list[str] | None = None
    in_args = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break
        m = re.match(r"^ {4}([\w, ]+): (.*)$", line)
        if m:
            current = [m.group(2).strip()]
            for name in m.group(1).split(","):
                out[name.strip()] = current  # type: ignore[assignment]
        elif current is not None and line.strip():
            current.append(line.strip())
    return {k: " ".join(v).replace("``", "").replace(":func:", "").replace("`", "").replace("%", "%%")
            for k, v in out.items()}


def _add_index_parser(sub) -> None:
    from vidssl.data.index import DATASETS, PROBE_ARGUMENTS, dataset_arguments

    p = sub.add_parser("index", help="build a video index and print its summary",
                       description="Index a dataset (metadata cached by path, size and mtime, so "
                                   "a second build is near-instant) and print a summary table. "
                                   "`vidssl index DATASET --help` lists that dataset's arguments; "
                                   "docs/datasets.md shows each dataset's folder layout.")
    datasets = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name in DATASETS.names():
        builder = DATASETS[name]
        info = DATASETS.info(name)
        helps = builder_argument_help(builder)
        summary = (inspect.getdoc(builder) or name).split("\n\n")[0].replace("\n", " ").replace("``", "")
        d = datasets.add_parser(name, help=summary.replace("%", "%%"),
                                description=summary + " See docs/datasets.md.")
        d.add_argument("--root", required=True, help="dataset root folder")
        own = d.add_argument_group(f"{name} arguments")
        for arg, default in dataset_arguments(name).items():
            if arg in PROBE_ARGUMENTS:
                continue
            kw: dict = {"default": None, "help": helps.get(arg, "see the builder's docstring")}
            if default is not inspect.Parameter.empty and default is not None:
                kw["help"] += f" (default: {', '.join(default) if isinstance(default, tuple) else default})"
            elif default is inspect.Parameter.empty:
                kw["help"] += " (required)"
            if arg == "split":
                top = info.get("max_split")
                kw.update(type=int, choices=range(1, top + 1) if top else None)
            elif arg == "subset" and info.get("subsets"):
                kw["choices"] = list(info["subsets"])
                kw["help"] += f"; one of {', '.join(info['subsets'])}"
            own.add_argument(f"--{arg.replace('_', '-')}", dest=arg, metavar=arg.upper(), **kw)
        d.add_argument("--backend", default="torchcodec", help="decoder used to probe files (%(default)s)")
        d.add_argument("--workers", type=int, default=1, help="parallel probes (%(default)s)")
        d.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
        d.add_argument("--save", help="also write the index to this .npz file")
        d.add_argument("--quiet", action="store_true", help="no progress bar")
        d.set_defaults(func=cmd_index, dataset=name)


def print_index_summary(indexes: Sequence, console=None, title: str = "video index") -> None:
    from rich.table import Table

    console = console or _console()
    table = Table(title=title)
    for col in ("index", "videos", "classes", "groups", "frames (min/median/max)", "fps",
                "missing", "failed"):
        table.add_column(col, justify="left" if col == "index" else "right")
    for index in indexes:
        s = index.summary()
        table.add_row(s["name"], str(s["videos"]), str(s["classes"]), str(s["groups"]),
                      f"{s['frames_min']}/{s['frames_median']:.0f}/{s['frames_max']}",
                      f"{s['fps_median']:.2f}", str(s["missing"]), str(s["failed"]))
    console.print(table)
    for index in indexes:
        for line in index.report.summary_lines():
            console.print(f"[yellow]{index.name}: {line}[/yellow]")


def cmd_index(args: argparse.Namespace) -> int:
    from vidssl.data.index import build_index

    t0 = time.perf_counter()
    index = build_index(args.dataset, args.root, **_index_kwargs(args))
    elapsed = time.perf_counter() - t0
    print_index_summary([index])
    rep = index.report
    _console().print(f"built in {elapsed:.2f} s ({rep.probed} files probed, {rep.cached} from cache)")
    if rep.found_hash:
        _console().print(f"hash of the videos found: {rep.found_hash} ({len(index)} videos"
                         + (f" of {rep.listed} listed" if rep.listed else "") + ")")
    if args.save:
        index.save(args.save)
        _console().print(f"saved index to {args.save}")
    return 0


# ---------------------------------------------------------------- benchmarks
def _require_root(root: str) -> None:
    if not os.path.isdir(root):
        raise VidsslError(f"dataset root {root} does not exist: run `vidssl make-synthetic "
                          f"--out {root}` first or pass --root")


def _write_and_show(result: dict, out: str, stem: str, markdown: str) -> None:
    from vidssl.bench.decode import write_results

    paths = write_results(result, out, stem=stem, markdown=markdown)
    _console().print(markdown, markup=False)
    _console().print(f"wrote {paths[0]} and {paths[1]}")


def cmd_bench_decode(args: argparse.Namespace) -> int:
    from vidssl.bench.decode import run_decode_benchmark, to_markdown
    from vidssl.data.index import build_index

    _require_root(args.root)
    index = build_index("synthetic", args.root, split=1, subset="train", progress=False)
    result = run_decode_benchmark(
        index, clip_len=args.frames, stride=args.stride, num_clips=args.clips,
        rounds=args.rounds, batch_size=args.batch_size, backends=args.backends,
        progress=lambda msg: log.info(msg))
    _write_and_show(result, args.out, "decode_throughput", to_markdown(result))
    return 0


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from vidssl.config import load_config
    from vidssl.data.index import build_index
    from vidssl.data.synthetic import make_synthetic
    from vidssl.demo import DemoConfig, loader_throughput, run_demo

    console = _console()
    cfg = load_config(DemoConfig, args.config, args.overrides)
    steps = 3 if args.loader_only else 6
    console.rule(f"1/{steps}  synthetic dataset")
    summary = make_synthetic(args.root, progress=not args.quiet, overwrite=args.overwrite,
                             **dataclasses.asdict(cfg.synthetic))
    console.print(summary.describe())
    console.rule(f"2/{steps}  video index (UCF101 layout, split 1)")
    indexes = [build_index("synthetic", args.root, split=1, subset=s, progress=False)
               for s in ("train", "test")]
    print_index_summary(indexes, console)
    console.rule(f"3/{steps}  clip loader")
    stats = loader_throughput(indexes[0], batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    console.print(stats.describe())
    if args.loader_only:
        return 0
    run_demo(args.root, cfg, console=console, quiet=args.quiet)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from vidssl.compare import CompareConfig, run_compare
    from vidssl.config import load_config

    cfg = load_config(CompareConfig, args.config, args.overrides)
    run_compare(args.root, cfg, console=_console(), quiet=args.quiet)
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from vidssl.bench.train import run_train_benchmark, to_markdown
    from vidssl.config import load_config
    from vidssl.train.config import PretrainConfig

    cfg = load_config(PretrainConfig, args.config, args.overrides)
    result = run_train_benchmark(cfg, steps=args.steps, rounds=args.rounds,
                                 progress=lambda msg: log.info(msg))
    _write_and_show(result, args.out, "train_throughput", to_markdown(result))
    return 0


def cmd_bench_soak(args: argparse.Namespace) -> int:
    import shlex

    from vidssl.bench.decode import environment
    from vidssl.bench.soak import decode_soak, index_sharing, to_markdown
    from vidssl.data.decoders import available_decoders
    from vidssl.data.index import build_index

    say = lambda msg: log.info(msg)  # noqa: E731
    result = {"warmup": args.warmup, "decode": [], "index": None,
              "command": ("vidssl bench soak " + shlex.join(args.argv[2:])).rstrip()}
    if args.clips > 0:
        _require_root(args.root)
        index = build_index("synthetic", args.root, split=1, subset="train", progress=False)
        for backend in args.backends or available_decoders():
            result["decode"].append(decode_soak(index, backend, num_clips=args.clips,
                                                sample_every=args.sample_every,
                                                warmup=args.warmup, progress=say))
    if args.records > 0:
        result["index"] = index_sharing(args.records, workers=args.workers,
                                        baseline=not args.no_baseline, progress=say)
    result["environment"] = environment()
    _write_and_show(result, args.out, "soak", to_markdown(result))
    return 0


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    import shlex

    from vidssl.bench.gpu_pipeline import run_gpu_pipeline, to_markdown

    _require_root(args.root)
    result = run_gpu_pipeline(args.root, sizes=args.sizes, videos=args.videos, frames=args.frames,
                              clips=args.clips, encoders=args.encoders,
                              batch_sizes=args.batch_sizes, steps=args.steps, rounds=args.rounds,
                              workers=args.workers, progress=lambda msg: log.info(msg))
    result["command"] = ("vidssl bench gpu " + shlex.join(args.argv[2:])).rstrip()
    _write_and_show(result, args.out, args.stem, to_markdown(result))
    return 0


# ---------------------------------------------------------------- configs
def cmd_configs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vidssl.config import list_shipped_configs, resolve_config_path, shipped_configs_dir

    if args.name is None:
        _console().print(f"shipped configs ({shipped_configs_dir()}):", markup=False)
        for name in list_shipped_configs():
            print(name)
        return 0
    text = Path(resolve_config_path(args.name)).read_text(encoding="utf-8")
    if args.out is None:
        print(text, end="")
        return 0
    if os.path.exists(args.out) and not args.force:
        raise VidsslError(f"{args.out} exists (pass --force to replace it)")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    _console().print(f"wrote {args.out}", markup=False)
    return 0


# ---------------------------------------------------------------- export
def export_card(checkpoint: dict, checkpoint_path: str, results: str | None) -> tuple[dict, dict]:
    """Model-card facts and the ``source`` record of a training checkpoint (and eval results)."""
    import platform

    import torch

    import vidssl

    cfg = checkpoint.get("config") or {}
    method, data, train = cfg.get("method") or {}, cfg.get("data") or {}, cfg.get("train") or {}
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_path)))
    saved = os.path.join(run_dir, "config.yaml")
    command = (checkpoint.get("provenance") or {}).get("command") or (
        f"vidssl pretrain --config {saved}" if os.path.isfile(saved) else None)
    card = {
        "method": method.get("name"), "method_params": method.get("params") or {},
        "dataset": data.get("dataset"),
        "data": {k: data.get(k) for k in ("dataset", "split", "subset") if data.get(k) is not None},
        "steps": checkpoint.get("step"), "seed": train.get("seed"), "command": command,
        "versions": {"vidssl": vidssl.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "notes": [f"exported from {os.path.basename(checkpoint_path)} (step {checkpoint.get('step')}); "
                  f"skipped videos during training: {checkpoint.get('skipped', 0)}"],
    }
    if results:
        from vidssl.eval.report import EvalResults

        card["results_markdown"] = EvalResults.from_json(results).to_markdown()
    source = {"checkpoint": os.path.abspath(checkpoint_path), "step": checkpoint.get("step"),
              "method": method.get("name"), "dataset": data.get("dataset")}
    return card, source


def cmd_export(args: argparse.Namespace) -> int:
    from vidssl.models.export import export_encoder

    if args.results and not os.path.isfile(args.results):
        raise VidsslError(f"--results {args.results} not found (a results.json of vidssl eval)")
    if args.checkpoint:
        from vidssl.models.checkpoint import load_checkpoint, load_encoder

        encoder = load_encoder(args.checkpoint)
        card, source = export_card(load_checkpoint(args.checkpoint), args.checkpoint, args.results)
    else:
        from vidssl.models.encoders import create_encoder

        encoder = create_encoder(args.encoder, pretrained=args.pretrained)
        source = {"encoder": args.encoder, "pretrained": args.pretrained}
        card = {"notes": [f"encoder {args.encoder} with pretrained={args.pretrained!r}"]}
        if args.results:
            from vidssl.eval.report import EvalResults

            card["results_markdown"] = EvalResults.from_json(args.results).to_markdown()
    if args.title:
        card["title"] = args.title
    out = export_encoder(encoder, args.out, card=card, source=source, overwrite=args.overwrite)
    _console().print(f"exported {source.get('method') or args.encoder} encoder to {out}/ "
                     f"(config.json, model.safetensors, README.md); load it with "
                     f"--pretrained {out}", markup=False)
    return 0


# ---------------------------------------------------------------- pretrain
def cmd_pretrain(args: argparse.Namespace) -> int:
    from vidssl.config import load_config
    from vidssl.runtime import dist
    from vidssl.train.config import PretrainConfig
    from vidssl.train.run import run

    overrides = list(args.overrides) + (["train.if_exists=overwrite"] if args.overwrite else [])
    cfg = load_config(PretrainConfig, args.config, overrides)
    result = run(cfg, resume=args.resume if args.resume != "last" else True)
    if dist.is_main():
        _console().print(pretrain_summary(result), markup=False)
    if result.stopped_by:  # pre-emption: a clean exit, but not a success (schedulers requeue)
        return 143 if result.stopped_by == "SIGTERM" else 130
    return 0


def pretrain_summary(result) -> str:
    """What a run did, without numbers it did not measure: per stage for multi-stage runs,
    updates vs steps when some steps made none, 'nothing to do' for a finished run."""
    def one(r, label: str) -> str:
        done = r.steps - r.start_step
        if done == 0:
            return (f"{label}nothing to do: finished at step {r.steps} of {r.total or r.steps} "
                    f"(raise train.max_steps or train.epochs to continue)")
        updates = f" ({r.updates} updated the weights)" if r.updates != done else ""
        loss = (f"last optimised loss {r.last_update_loss:.4f}" if r.updates else
                "no step updated the weights (e.g. CoCLR's queue still filling)")
        resumed = f", resumed at step {r.start_step}" if r.start_step else ""
        return (f"{label}{done} steps{updates}{resumed}, now at step {r.steps} of {r.total}: {loss}; "
                f"{r.clips_per_s:.1f} clips/s, data wait {100 * r.data_wait:.0f}%")

    stages = result.stages or [result]
    lines = [one(r, f"stage {r.name}: " if result.stages else "pretrained ") for r in stages]
    lines += [f"checkpoint: {result.checkpoint}", f"skipped: {result.skipped.summary()}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidssl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="quick start: synthetic data, pretrain, evaluate, report",
                       description="Generate the embedded synthetic dataset (if needed), index "
                                   "it, time the clip loader, pretrain the default method (one "
                                   "run per seed), evaluate it against random init and a "
                                   "supervised upper bound, and write report.html. Settings: "
                                   "configs/demo.yaml and dotted key=value overrides (e.g. "
                                   "steps=60 seeds=[0] synthetic.num_classes=5).")
    p.add_argument("--root", default=DEFAULT_SYNTHETIC_ROOT, help="dataset folder (%(default)s)")
    p.add_argument("--config", help="demo settings (see configs/demo.yaml)")
    p.add_argument("--loader-only", action="store_true",
                   help="stop after the dataset, index and loader summary")
    p.add_argument("--overwrite", action="store_true",
                   help="regenerate the dataset at --root when it was made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted demo settings")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("make-synthetic", help="write the synthetic action + tracking dataset",
                       description="Write the synthetic action dataset (real .avi/.mp4 files in "
                                   "the UCF101 layout, three split lists) and its tracking "
                                   "variant (DAVIS and MOT layouts). Settings come from "
                                   "--config and key=value overrides, e.g. num_classes=5.")
    p.add_argument("--out", default=DEFAULT_SYNTHETIC_ROOT, help="output folder (%(default)s)")
    p.add_argument("--config", help="YAML file of settings (see configs/synthetic.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (default: min(2, CPU cores); the files do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help=f"settings: {', '.join(f.name for f in dataclasses.fields(SyntheticOptions))}")
    p.set_defaults(func=cmd_make_synthetic)

    _add_index_parser(sub)

    p = sub.add_parser("configs", help="list, print or copy the configs that ship with vidssl",
                       description="Without NAME: list the shipped configs. With NAME (e.g. "
                                   "pretrain/tclr_synthetic, or just tclr_synthetic): print it, or "
                                   "copy it to --out to edit. Every --config option also accepts "
                                   "these names.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a shipped config")
    p.add_argument("--out", help="write the config to this file instead of printing it")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_configs)

    p = sub.add_parser("export", help="write an encoder as a Hub-style folder (safetensors + card)",
                       description="Write the encoder of a training checkpoint (or a registered "
                                   "encoder) as a folder: config.json (architecture and "
                                   "preprocessing), model.safetensors and a README.md model card "
                                   "(method, data, steps, evaluation, command). Load it anywhere "
                                   "with --pretrained FOLDER (or hf:ORG/NAME once uploaded).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a vidssl training checkpoint")
    src.add_argument("--encoder", help="a registered encoder name (with --pretrained)")
    p.add_argument("--pretrained", help="with --encoder: weights to load ('default', a path, ...)")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--results", help="a results.json of vidssl eval to put in the model card")
    p.add_argument("--title", help="the model card's title")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("pretrain", help="self-supervised pretraining from a config",
                       description="Pretrain an encoder with a method (configs/pretrain/*.yaml); "
                                   "key=value overrides use dotted keys, e.g. optim.lr=0.01 "
                                   "train.max_steps=100. Under torchrun, runs DDP.")
    p.add_argument("--config", help="YAML config (see configs/pretrain/)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT|auto",
                   help="continue a run: from CHECKPOINT, or (no value) from "
                        "OUT_DIR/checkpoints/last.pt; 'auto': from that file if it exists, else "
                        "start (torchrun --max-restarts, requeued jobs). KEY=VALUE after it stays "
                        "an override")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier run in train.out_dir (default: a new "
                        "versioned folder OUT_DIR_v2, ...; train.if_exists=error refuses)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("compare", help="pretrain every method under one budget, evaluate, tabulate",
                       description="Pretrain each method (entries, see vidssl/compare.py) for the "
                                   "same steps with the same optimiser on the synthetic dataset, "
                                   "each in its own process, evaluate like the demo and write "
                                   "comparison.md / comparison.json / report.html. Overrides: "
                                   "dotted key=value, e.g. steps=60 entries=[cvrl,dpc] seeds=[0,1].")
    p.add_argument("--root", default=DEFAULT_SYNTHETIC_ROOT, help="dataset folder (%(default)s)")
    p.add_argument("--config", help="YAML of compare settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted settings")
    p.set_defaults(func=cmd_compare)

    from vidssl.eval.command import add_eval_parser

    add_eval_parser(sub)

    from vidssl.language.command import add_concepts_parser

    add_concepts_parser(sub)

    from vidssl.track.command import add_track_parser

    add_track_parser(sub)

    p = sub.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    p = bench.add_parser("decode", help="decode throughput vs raw torchcodec and pytorchvideo",
                         description="Clips/s of the vidssl loader (each installed backend), raw "
                                     "torchcodec and pytorchvideo on the same clips, one process.")
    p.add_argument("--root", default=DEFAULT_SYNTHETIC_ROOT, help="synthetic dataset folder")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (%(default)s)")
    p.add_argument("--stride", type=int, default=2, help="frame stride (%(default)s)")
    p.add_argument("--clips", type=int, default=96, help="clips per round (%(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (%(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="loader batch size (%(default)s)")
    p.add_argument("--backends", nargs="*", help="vidssl backends (default: all installed)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"),
                   help="results folder (%(default)s)")
    p.set_defaults(func=cmd_bench_decode)
    p = bench.add_parser("train", help="training step fed by the loader vs in-memory batches",
                         description="Clips/s of a pretraining step with data from the real "
                                     "loader and from batches already in memory, same run; the "
                                     "ratio is the data-pipeline efficiency.")
    p.add_argument("--config", default=os.path.join("configs", "pretrain", "cvrl_synthetic.yaml"),
                   help="pretrain config (%(default)s)")
    p.add_argument("--steps", type=int, default=8, help="steps per round (%(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (%(default)s)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"),
                   help="results folder (%(default)s)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.set_defaults(func=cmd_bench_train)
    p = bench.add_parser("soak", help="memory over many decodes; index memory across workers",
                         description="RSS over N decoded clips per backend (slope after warm-up) "
                                     "and worker memory over an index of M synthetic records, "
                                     "vs a Python list of dicts, same run.")
    p.add_argument("--root", default=DEFAULT_SYNTHETIC_ROOT, help="synthetic dataset folder")
    p.add_argument("--clips", type=int, default=10_000, help="clips per backend; 0 skips (%(default)s)")
    p.add_argument("--sample-every", type=int, default=250, help="clips between RSS samples")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of clips before the slope")
    p.add_argument("--backends", nargs="*", help="decoders (default: all installed)")
    p.add_argument("--records", type=int, default=1_000_000,
                   help="index records; 0 skips (%(default)s)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers (%(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the list-of-dicts baseline")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"),
                   help="results folder (%(default)s)")
    p.set_defaults(func=cmd_bench_soak)
    p = bench.add_parser("gpu", help="CPU vs NVDEC decoding; step with the real loader vs on-device data",
                         description="Decode clips/s per backend at 320x240 and 1280x720 (CPU "
                                     "backends on all cores, NVDEC in the training process), and "
                                     "the CVRL step fed by the real loader (decoder auto) vs data "
                                     "already on the device, at the largest batch that fits.")
    p.add_argument("--root", default=DEFAULT_SYNTHETIC_ROOT, help="synthetic dataset (training)")
    p.add_argument("--sizes", nargs="+", default=["320x240", "1280x720"], help="WxH of test videos")
    p.add_argument("--videos", type=int, default=8, help="test videos per size (%(default)s)")
    p.add_argument("--frames", type=int, default=96, help="frames per test video (%(default)s)")
    p.add_argument("--clips", type=int, default=256, help="clips decoded per backend (%(default)s)")
    p.add_argument("--encoders", nargs="+", default=["r3d_18", "videomae_vit_b"])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 96, 128, 192, 256],
                   help="tried in order on CUDA until out of memory; the first one on CPU")
    p.add_argument("--steps", type=int, default=10, help="steps per round (%(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (%(default)s)")
    p.add_argument("--workers", type=int, help="CPU decode workers (default: all cores)")
    p.add_argument("--stem", default="gpu_pipeline", help="results file name (%(default)s)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"),
                   help="results folder (%(default)s)")
    p.set_defaults(func=cmd_bench_gpu)
    return parser


def bench_on_synthetic(benchmark: str, argv: list[str]) -> int:
    """``vidssl bench BENCHMARK ARGV``, writing the synthetic dataset first when ``--root`` (default
    ``data/synthetic``) does not exist yet (what the ``benchmarks/*.py`` scripts do)."""
    root = argv[argv.index("--root") + 1] if "--root" in argv[:-1] else DEFAULT_SYNTHETIC_ROOT
    if not os.path.isdir(root):
        rc = main(["make-synthetic", "--out", root])
        if rc:
            return rc
    return main(["bench", benchmark, *argv])


def _version() -> str:
    from vidssl import __version__

    return f"vidssl {__version__}"


_OVERRIDE = re.compile(r"^[A-Za-z_][\w:-]*(\.[\w:-]+)*=")


def _one_value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings (of every sub-command) that take exactly one value."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _one_value_options(sub)
        elif action.option_strings and action.nargs in (None, 1):
            out.update(action.option_strings)
    return out


def split_overrides(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(arguments, KEY=VALUE overrides)``: an override may stand anywhere after the sub-command
    (after ``--splits 1``, after a bare ``--resume``, after ``--``); a token is left alone only
    when it is the value of an option that takes exactly one value (``--root a=b``)."""
    takes_one = _one_value_options(parser)
    rest, overrides, prev = [], [], None
    for token in argv:
        if token != "--" and _OVERRIDE.match(token) and prev not in takes_one:
            overrides.append(token)
        elif token != "--":
            rest.append(token)
        prev = token
    return rest, overrides


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    rest, overrides = split_overrides(parser, argv)
    args = parser.parse_args(rest)
    if overrides:
        if not hasattr(args, "overrides"):
            parser.error(f"vidssl {args.command} takes no KEY=VALUE settings ({overrides[0]!r})")
        args.overrides = list(args.overrides) + overrides
    args.argv = argv
    from vidssl.provenance import set_command

    previous = set_command(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except VidsslError as err:
        if args.debug:
            raise
        print(f"vidssl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        # a path the command was given (or one made from it) that cannot be read or written
        if args.debug:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"vidssl {args.command}: error: {err.strerror or err}{where} (--debug for the traceback)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidssl {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        set_command(previous[1:] if previous else None)  # main() called from Python: restore


if __name__ == "__main__":
    sys.exit(main())
