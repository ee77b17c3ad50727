"""The quick-start job (``vidssl demo``): synthetic data -> pretrain -> evaluate -> report.

1. generate the embedded synthetic dataset (skipped when already there);
2. index it and time the clip loader (a throughput line);
3. pretrain the default method for ``steps`` steps, once per seed;
4. train the same encoder *with* labels (the supervised upper bound), once per seed, and check
   each run learned (:func:`~vidssl.train.monitor.pretext_learned` on its training accuracy): a
   seed that did not is left out of the bound and named in the notes;
5. evaluate random init (one per seed), the pretrained encoders and the supervised ones that
   learned on split 1: linear probe, kNN, retrieval R@k, and the motion-vs-appearance diagnostics;
6. write ``report.html`` (+ PNGs) and ``summary.json``, and print a one-screen summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

import torch

from vidssl.data.dataset import ClipDataset, SkipCounter, build_loader, set_loader_epoch
from vidssl.data.index.core import VideoIndex
from vidssl.data.synthetic.options import SyntheticOptions
from vidssl.train.config import EncoderConfig, MethodConfig, OptimConfig, has_recipe, load_recipe
from vidssl.train.monitor import LEARNED_MARGIN

log = logging.getLogger("vidssl")


@dataclass
class LoaderStats:
    """What one pass of the loader measured."""

    clips: int
    batches: int
    seconds: float
    batch_shape: tuple[int, ...]
    num_workers: int
    skipped: SkipCounter

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")

    def describe(self) -> str:
        return (f"loader: {self.batches} batches of {tuple(self.batch_shape)} uint8 "
                f"(B, T, C, H, W), {self.clips} clips in {self.seconds:.2f} s = "
                f"{self.clips_per_s:.1f} clips/s with {self.num_workers} workers\n"
                f"skipped: {self.skipped.summary()}")


def loader_throughput(index: VideoIndex, *, batch_size: int = 8, num_workers: int = 2,
                      epochs: int = 1, clip_len: int = 16, stride: int = 2,
                      decoder: str = "torchcodec", seed: int = 0) -> LoaderStats:
    """Iterate a random-clip loader over ``index`` for ``epochs`` and time it."""
    from vidssl.data.samplers import RandomClipSampler

    dataset = ClipDataset(index, RandomClipSampler(num_frames=clip_len, stride=stride),
                          decoder=decoder, seed=seed)
    loader = build_loader(dataset, batch_size, num_workers=num_workers, seed=seed)
    skipped = SkipCounter()
    clips = batches = 0
    shape: tuple[int, ...] = ()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        set_loader_epoch(loader, epoch)
        for batch in loader:
            view = batch["views"][0]
            assert view.dtype == torch.uint8
            shape = tuple(view.shape)
            clips += view.shape[0]
            batches += 1
            skipped.update(batch)
    return LoaderStats(clips, batches, time.perf_counter() - t0, shape, num_workers, skipped)


class _RecipeParams(Mapping):
    """Method -> its recipe's ``method.params`` (``configs/pretrain/<method>_synthetic.yaml``), for
    the methods that ship one, read when asked for."""

    def __getitem__(self, method: str) -> dict[str, Any]:
        if not has_recipe(method):
            raise KeyError(method)
        return dict(load_recipe(method).method.params)

    def __iter__(self) -> Iterator[str]:
        from vidssl.methods import list_methods

        return iter([m for m in list_methods() if has_recipe(m)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: Small-CPU parameters per method, under whatever ``method.params`` the user gives (so
#: ``method.name=cvrl`` alone switches the demo to CVRL with sensible sizes): each method's
#: recipe, the same file ``vidssl pretrain`` and ``vidssl compare`` read.
DEMO_METHOD_PARAMS: Mapping[str, dict[str, Any]] = _RecipeParams()


def _default_method() -> MethodConfig:
    return MethodConfig("tclr", {})


@dataclass
class DemoEval:
    num_clips: int = 4
    clip_len: int = 16
    stride: int = 2
    size: int = 48
    protocols: list[str] = field(default_factory=lambda: ["linear", "knn", "retrieval", "diagnostics"])
    # BatchNorm statistics of the frozen encoders: recompute = precise BN on split 1's train clips
    # (random init's (0, 1) statistics match nothing); keep = each encoder's own.
    bn: str = "recompute"
    # Also evaluate linear / kNN / retrieval with the other BN mode; the report shows those rows
    # (prefixed "bn_keep/" or "bn_recompute/") where they differ.
    other_bn: bool = True
    # Triplets of the `counterfactual` protocol, when `protocols` lists it (compare's default).
    counterfactual_triplets: int = 100


@dataclass
class DemoConfig:
    """``vidssl demo`` settings (YAML: ``configs/demo.yaml``; CLI: dotted ``key=value``)."""

    out_dir: str = "runs/demo"
    synthetic: SyntheticOptions = field(default_factory=SyntheticOptions)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        "r3d_tiny", None, {"temporal_dilation_last_stage": True}))
    method: MethodConfig = field(default_factory=_default_method)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=10))
    steps: int = 300
    batch_size: int = 6
    supervised: bool = True
    supervised_steps: int = 200
    supervised_batch_size: int = 16
    supervised_lr: float = 5e-4
    # a supervised seed whose training accuracy (mean of the last quarter of its steps) is below
    # chance + this is dropped from the bound (:func:`~vidssl.train.monitor.pretext_learned`)
    supervised_margin: float = LEARNED_MARGIN
    num_workers: int = 2
    threads: Optional[int] = None     # torch intra-op threads (None: torch's default)
    eval: DemoEval = field(default_factory=DemoEval)


def _pretrain_config(cfg: DemoConfig, root: str, seed: int, out: str, *, supervised: bool,
                     num_classes: int):
    from vidssl.train.config import DataConfig, PretrainConfig, TrainConfig

    method = MethodConfig(cfg.method.name, {**DEMO_METHOD_PARAMS.get(cfg.method.name, {}),
                                            **cfg.method.params})
    if supervised:
        method = MethodConfig("supervised", {"num_classes": num_classes, "clip_len": cfg.eval.clip_len,
                                             "stride": cfg.eval.stride, "crop_size": cfg.eval.size})
    steps = cfg.supervised_steps if supervised else cfg.steps
    optim = dataclasses.replace(cfg.optim)
    if supervised:
        optim.lr = cfg.supervised_lr
    return PretrainConfig(
        data=DataConfig(dataset="synthetic", root=root, num_workers=cfg.num_workers,
                        batch_size=cfg.supervised_batch_size if supervised else cfg.batch_size),
        encoder=dataclasses.replace(cfg.encoder, kwargs=dict(cfg.encoder.kwargs)),
        method=method, optim=optim,
        train=TrainConfig(epochs=10_000, max_steps=steps, seed=seed, out_dir=out, progress=False,
                          log_every=max(1, steps // 6), tensorboard=True))


def _key(protocol: str, metric: str) -> str:
    return f"{protocol}_{metric}" if not metric.startswith(protocol) else metric


def _flatten(results, prefix: str = "") -> tuple[dict[str, float], dict[str, list[float]]]:
    """``({protocol_metric: value}, {protocol_metric: per-video outcomes})`` of split 1 (what the
    report tabulates), keys prefixed with ``prefix``."""
    split = results.splits[0]
    out, per_video = {}, {}
    for protocol, metrics in results.per_split[split].items():
        for m, v in metrics.items():
            out[prefix + _key(protocol, m)] = v
            values = results.outcomes(split, protocol, m)
            if values is not None:
                per_video[prefix + _key(protocol, m)] = list(values)
    return out, per_video


#: Protocols evaluated a second time under the other BN mode (cheap once features exist).
OTHER_BN_PROTOCOLS = ("linear", "knn", "retrieval")


def split1_evaluator(root: str, ev: DemoEval, num_workers: int, quiet: bool = False):
    """``encoder -> (metrics, per_video)``: the demo's frozen-feature evaluation on split 1 of the
    synthetic dataset at ``root`` (``ev``'s clips, protocols and BN mode), flattened by
    :func:`_flatten`; with ``ev.other_bn`` also linear / kNN / retrieval under the other BN mode,
    keys prefixed ``bn_keep/`` or ``bn_recompute/``. ``vidssl compare`` uses the same one."""
    from vidssl.eval import evaluate
    from vidssl.eval.batchnorm import check_bn_mode
    from vidssl.eval.config import EvalConfig

    check_bn_mode(ev.bn, key="eval.bn")

    def config(mode: str) -> EvalConfig:
        ecfg = EvalConfig()
        ecfg.features.num_clips, ecfg.features.clip_len = ev.num_clips, ev.clip_len
        ecfg.features.stride, ecfg.features.size = ev.stride, ev.size
        ecfg.features.resize_size, ecfg.features.num_workers = ev.size, num_workers
        ecfg.bn.mode = mode
        ecfg.diagnostics.counterfactual_triplets = ev.counterfactual_triplets
        return ecfg

    other = "keep" if ev.bn == "recompute" else "recompute"

    def run(encoder) -> tuple[dict[str, float], dict[str, list[float]]]:
        metrics, per_video = _flatten(evaluate(encoder, dataset="synthetic", root=root, splits=[1],
                                               protocols=ev.protocols, config=config(ev.bn),
                                               progress=not quiet))
        extra = [p for p in ev.protocols if p in OTHER_BN_PROTOCOLS]
        if ev.other_bn and extra:
            m2, pv2 = _flatten(evaluate(encoder, dataset="synthetic", root=root, splits=[1],
                                        protocols=extra, config=config(other), progress=not quiet),
                               prefix=f"bn_{other}/")
            metrics.update(m2)
            per_video.update(pv2)
        return metrics, per_video

    return run


def record_metrics(contenders: dict[str, dict[str, Any]], name: str, seed: int,
                   metrics: dict[str, float], per_video: dict[str, list[float]] | None = None) -> None:
    """Append one run's metrics (and per-test-video outcomes) to ``contenders[name]`` (the
    summary layout the report reads)."""
    c = contenders.setdefault(name, {"seeds": [], "metrics": {}, "per_video": {}})
    c["seeds"].append(seed)
    for k, v in metrics.items():
        c["metrics"].setdefault(k, []).append(v)
    for k, v in (per_video or {}).items():
        c.setdefault("per_video", {}).setdefault(k, []).append(list(v))


def retrieval_examples(encoder, root: str, cfg: DemoConfig, *, queries: int = 4,
                       neighbors: int = 3) -> list[dict[str, Any]]:
    """Nearest training videos (cosine, same features as the evaluation) of a few test videos,
    one query per class for the first ``queries`` classes."""
    from vidssl.data.index import build_index
    from vidssl.eval import extract_features

    kw = dict(num_clips=cfg.eval.num_clips, clip_len=cfg.eval.clip_len, stride=cfg.eval.stride,
              size=cfg.eval.size, resize_size=cfg.eval.size, num_workers=cfg.num_workers,
              progress=False)
    sets = [extract_features(encoder, build_index("synthetic", root, split=1, subset=s,
                                                  progress=False), **kw) for s in ("train", "test")]
    train, test = sets
    names = train.class_names or [str(i) for i in range(int(train.labels.max()) + 1)]
    g = torch.nn.functional.normalize(train.features, dim=1)
    q = torch.nn.functional.normalize(test.features, dim=1)
    out, seen = [], set()
    for i, label in enumerate(test.labels.tolist()):
        if label in seen or len(out) >= queries:
            continue
        seen.add(label)
        top = (g @ q[i]).topk(min(neighbors, len(g))).indices.tolist()
        out.append({"query": (test.paths[i], names[label]),
                    "neighbors": [(train.paths[j], names[int(train.labels[j])]) for j in top]})
    return out


def run_demo(root: str, cfg: DemoConfig, *, console=None, quiet: bool = False) -> dict[str, Any]:
    """Steps 3-6 of the module docstring (the dataset must exist); returns the summary dict.

    Writes into ``cfg.out_dir``, or the next free ``<out_dir>_vN`` when that folder holds an earlier
    demo (:func:`~vidssl.runtime.rundir.claim_run_dir`; locked while it runs)."""
    from vidssl.runtime.rundir import claim_run_dir

    with claim_run_dir(cfg.out_dir, what="demo") as out:
        return _run_demo(root, dataclasses.replace(cfg, out_dir=out), console=console, quiet=quiet)


def _run_demo(root: str, cfg: DemoConfig, *, console=None, quiet: bool = False) -> dict[str, Any]:
    from vidssl.models.checkpoint import load_encoder
    from vidssl.models.encoders import create_encoder
    from vidssl.report import print_summary, write_report
    from vidssl.train.monitor import read_metrics
    from vidssl.train.run import run

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    say = (lambda msg: None) if console is None else (lambda msg: console.rule(msg))
    timings: dict[str, float] = {}
    num_classes = len(json.load(open(os.path.join(root, "synthetic.json")))["classes"]) \
        if os.path.exists(os.path.join(root, "synthetic.json")) else 10
    run_eval = split1_evaluator(root, cfg.eval, cfg.num_workers, quiet)
    contenders: dict[str, dict[str, Any]] = {}
    losses: dict[str, list] = {}

    def record(name: str, seed: int, result: tuple[dict[str, float], dict[str, list[float]]],
               **extra: float) -> None:
        record_metrics(contenders, name, seed, {**result[0], **extra}, result[1])

    method = cfg.method.name
    t0 = time.perf_counter()
    for seed in cfg.seeds:
        say(f"pretrain {method} (seed {seed}, {cfg.steps} steps)")
        out = os.path.join(cfg.out_dir, f"{method}_seed{seed}")
        result = run(_pretrain_config(cfg, root, seed, out, supervised=False,
                                           num_classes=num_classes))
        losses.setdefault(method, []).append(
            [(r["step"], r["loss"]) for r in read_metrics(os.path.join(out, "metrics.jsonl"))])
        record(method, seed, run_eval(load_encoder(result.checkpoint)), train_clips_per_s=result.clips_per_s)
        torch.manual_seed(seed)
        record("random init", seed, run_eval(create_encoder(cfg.encoder.name, **cfg.encoder.kwargs)))
    timings["pretrain + eval"] = time.perf_counter() - t0
    examples = retrieval_examples(load_encoder(result.checkpoint), root, cfg)
    checks: list[dict[str, Any]] = []
    if cfg.supervised:
        t0 = time.perf_counter()
        for seed in cfg.seeds:
            say(f"supervised upper bound (seed {seed}, {cfg.supervised_steps} steps, uses the labels)")
            result, check = train_supervised(cfg, root, seed, num_classes)
            checks.append(check)
            losses.setdefault("supervised", []).append(
                [(r["step"], r["loss"]) for r in read_metrics(os.path.join(result.out_dir, "metrics.jsonl"))])
            if check["learned"]:
                record("supervised", seed, run_eval(load_encoder(result.checkpoint)))
            else:
                log.warning("%s: left out of the bound", did_not_learn(check))
        timings["supervised"] = time.perf_counter() - t0
    # order: lower bound, method, upper bound
    order = ["random init", method, "supervised"]
    contenders = {k: contenders[k] for k in order if k in contenders}
    summary = build_summary(cfg, root, contenders, losses, timings, num_classes, checks)
    summary["retrieval"] = examples
    os.makedirs(cfg.out_dir, exist_ok=True)
    with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    summary["report"] = write_report(cfg.out_dir, summary)
    if console is not None:
        print_summary(summary, console)
        console.print(f"report: {summary['report']}")
    return summary


def train_supervised(cfg: DemoConfig, root: str, seed: int, num_classes: int):
    """``(PretrainResult, check)``: one seed of the supervised bound trained into
    ``OUT_DIR/supervised_seed<seed>``, and whether it learned (``{"seed", **pretext_learned}``,
    training accuracy against ``chance + cfg.supervised_margin``)."""
    from vidssl.train.monitor import pretext_learned
    from vidssl.train.run import run

    pcfg = _pretrain_config(cfg, root, seed, os.path.join(cfg.out_dir, f"supervised_seed{seed}"),
                            supervised=True, num_classes=num_classes)
    result = run(pcfg)
    check = pretext_learned(os.path.join(result.out_dir, "metrics.jsonl"), "supervised",
                            pcfg.method.params, margin=cfg.supervised_margin)
    return result, {"seed": seed, **check}


def did_not_learn(check: dict[str, Any]) -> str:
    """``supervised seed S did not learn: training accuracy X% vs chance Y% (last quarter of N
    steps)`` for one of :func:`train_supervised`'s checks."""
    return (f"supervised seed {check['seed']} did not learn: training accuracy {100 * check['last']:.1f}% "
            f"vs chance {100 * check['chance']:.1f}% (last quarter of {check['steps']} steps)")


def supervised_notes(checks: list[dict[str, Any]]) -> list[str]:
    """The summary's lines on the supervised bound: which seeds it holds, and one line per seed
    that did not learn (left out of the bound), from :func:`train_supervised`'s checks."""
    if not checks:
        return []
    learned = [c["seed"] for c in checks if c["learned"]]
    margin = 100 * checks[0]["margin"]
    notes = [did_not_learn(c) for c in checks if not c["learned"]]
    if learned:
        notes.insert(0, f"supervised uses the action labels (upper bound); seeds {learned} of "
                        f"{[c['seed'] for c in checks]} (a seed counts when its training accuracy over "
                        f"the last quarter of its steps is at least chance + {margin:.0f} points)")
    else:
        notes.append(f"no supervised seed learned (training accuracy below chance + {margin:.0f} "
                     f"points on every seed): no supervised bound")
    return notes


HEADLINE = "linear_top1"


def build_summary(cfg: DemoConfig, root: str, contenders: dict, losses: dict,
                  timings: dict, num_classes: int,
                  supervised_checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The summary dict :mod:`vidssl.report` reads (also ``summary.json``); ``supervised_checks``
    (every supervised seed's :func:`train_supervised` check) is kept as ``"supervised_checks"``."""
    from vidssl.report import fmt_cell, mean_std

    method = cfg.method.name
    notes = [bn_summary_note(cfg.eval)]
    if method in contenders and "random init" in contenders:
        m, s = mean_std(contenders[method]["metrics"].get(HEADLINE, []))
        r, rs = mean_std(contenders["random init"]["metrics"].get(HEADLINE, []))
        gain = 100 * (m - r)
        notes.append(f"{method} linear probe {fmt_cell(contenders[method], HEADLINE)} (std over seeds "
                     f"{100 * s:.1f}) vs random init {fmt_cell(contenders['random init'], HEADLINE)} "
                     f"(std {100 * rs:.1f}): {gain:+.1f} points (seeds {cfg.seeds}; [95% bootstrap "
                     f"interval over the test videos and seeds]; chance {100 / num_classes:.0f}%)")
    notes += supervised_notes(supervised_checks or [])
    notes.append("diagnostics_* rows: motion label (= action) and appearance-factor probes; "
                 "see docs/evaluation.md for how to read them")
    plot = [k for k in ("linear_top1", "knn_top1", "retrieval_hit@1")
            if any(k in c["metrics"] for c in contenders.values())]
    plot += sorted({k for c in contenders.values() for k in c["metrics"]
                    if k.startswith("diagnostics_probe/") and k.endswith("/acc")})
    return {
        "title": f"vidssl demo: {method} on the synthetic action dataset (split 1)",
        "command": "vidssl demo", "settings": {**_flat_settings(cfg), "root": root},
        "contenders": contenders, "losses": losses, "timings": timings, "notes": notes,
        "plot_metrics": plot, "chance": 1.0 / num_classes,
        "supervised_checks": list(supervised_checks or []),
    }


def bn_summary_note(ev: DemoEval) -> str:
    """Which BatchNorm statistics the frozen evaluation used (and the other mode's rows)."""
    text = {"recompute": "BatchNorm: recompute (precise BN: each frozen encoder's statistics "
                         "re-estimated on split 1's train clips before extracting features)",
            "keep": "BatchNorm: keep (each encoder's own running statistics)"}[ev.bn]
    if ev.other_bn:
        other = "keep" if ev.bn == "recompute" else "recompute"
        text += f"; rows bn_{other}/* repeat linear / kNN / retrieval with bn={other} where they differ"
    return text


def _flat_settings(cfg: DemoConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                walk(f"{prefix}{f.name}.", getattr(obj, f.name))
        else:
            out[prefix.rstrip(".")] = obj

    walk("", cfg)
    return out
