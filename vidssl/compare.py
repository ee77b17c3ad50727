"""``vidssl compare``: every method pretrained under one budget, evaluated under one protocol.

Each entry of :data:`ENTRIES` (or ``entries`` in the config), a method's recipe
(``configs/pretrain/<method>_synthetic.yaml``) or a variant of one, is pretrained for the same
number of steps with the same optimiser on the synthetic dataset, in its own process (so the
peak memory of each run is its own: the child's peak resident set size from ``wait4``), then
evaluated exactly like the demo (split 1, frozen features, linear probe, kNN, retrieval and the
motion-vs-appearance diagnostics). Random init is the baseline row. Output: ``comparison.md``
(the table), ``comparison.json`` (every metric), ``report.html`` (with ``loss.png`` and
``pretext.png``, each entry's own pretext task against step: :func:`pretext_record`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch

from vidssl.demo import DemoEval, bn_summary_note, record_metrics, split1_evaluator
from vidssl.errors import VidsslError
from vidssl.train.config import EncoderConfig, OptimConfig, load_recipe, recipe_name

log = logging.getLogger("vidssl")

@dataclass(frozen=True)
class Entry:
    """A compared run: a method's recipe (``configs/pretrain/<recipe>_synthetic.yaml``: batch size,
    encoder arguments, method parameters) and a variant's changes over it."""

    recipe: str
    params: dict[str, Any] = field(default_factory=dict)
    batch_size: Optional[int] = None
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)   # merged over the recipe's; an entry
                                    # whose resolved arguments change the compared encoder gets its own
                                    # random-init row (:func:`own_init_row`)
    own_encoder: bool = False   # train the recipe's encoder (name + kwargs), not the compared CNN: the
                                # masked methods need a ViT with a token interface


#: The compared runs. Sizes live in the recipes (one home per method, shared with ``vidssl
#: pretrain`` and the demo); an entry names only what its variant changes.
ENTRIES: dict[str, Entry] = {
    "cvrl": Entry("cvrl"),    # the recipe: frame differences (RGB's instance task is solved by the look)
    "cvrl_rgb": Entry("cvrl", encoder_kwargs={"input_mode": "rgb"}),      # the paper's input, the frames
    "tclr": Entry("tclr", {"ic_weight": 1.0, "crop_scale": [0.36, 1.0]}),  # the paper's IC + LL + GL
    "tclr_ll_gl": Entry("tclr"),                                            # the recipe (= the demo)
    "vcop": Entry("vcop"),
    "shuffle_learn": Entry("vcop", {"tuple_of": "frames", "min_gap": 2, "max_gap": 8}, batch_size=32),
    "o3n": Entry("o3n"),      # the recipe: each element as its frame differences
    "o3n_rgb": Entry("o3n", encoder_kwargs={"input_mode": "rgb"}),        # each element as its RGB clip
    "dpc": Entry("dpc"),
    "coclr": Entry("coclr"),  # three stages share the budget: RGB InfoNCE, residual InfoNCE, RGB co-training
    "lss": Entry("lss"),      # the synthetic vocabulary encoded by the tiny random-init CLIP text tower
    "videomae": Entry("videomae", own_encoder=True),   # a 4-block ViT (videomae_tiny, patch 8), tube masks 90%
    "vjepa": Entry("vjepa", own_encoder=True),         # the same ViT; multi-block masks, EMA target, L1
}


class _Entries(Mapping):
    """Entry name -> ``{"recipe", "method", "batch_size", "encoder_kwargs", "params", "stages"}``
    (+ ``"encoder"``, the recipe's encoder name, for an entry with ``own_encoder``), resolved from
    the recipe when asked for."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        from vidssl.methods import method_stages

        e = ENTRIES[name]
        base = load_recipe(e.recipe)
        params = {**base.method.params, **e.params}
        out = {"recipe": recipe_name(e.recipe), "method": base.method.name,
               "batch_size": e.batch_size or base.data.batch_size,
               "encoder_kwargs": {**base.encoder.kwargs, **e.encoder_kwargs}, "params": params,
               "stages": max(1, len(method_stages(base.method.name, params)))}
        if e.own_encoder:
            out["encoder"] = base.encoder.name
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(ENTRIES)

    def __len__(self) -> int:
        return len(ENTRIES)


COMPARE_ENTRIES: Mapping[str, dict[str, Any]] = _Entries()

#: Columns of ``comparison.md``: (metric key, header, scale).
COLUMNS: list[tuple[str, str, float]] = [
    ("linear_top1", "action linear probe %", 100.0),
    ("diagnostics_probe/action/acc", "motion-label probe %", 100.0),
    ("diagnostics_probe/shape/acc", "shape probe %", 100.0),
    ("diagnostics_probe/texture/acc", "texture probe %", 100.0),
    ("diagnostics_probe/background/acc", "background probe %", 100.0),
    ("retrieval_hit@1", "retrieval R@1 %", 100.0),
    ("diagnostics_effective_rank", "effective rank", 1.0),
    ("train_clips_per_s", "train clips/s", 1.0),
    ("peak_rss_mb", "peak RSS MB", 1.0),
    ("pretrain_s", "pretrain s", 1.0),
]
#: The counterfactual protocol's column, shown when an entry has it (docs/evaluation.md).
COUNTERFACTUAL_COLUMN = ("counterfactual_action_share", "action share of feature change %", 100.0)
#: Compare's evaluation: the demo's protocols plus the counterfactual triplets.
COMPARE_PROTOCOLS = ["linear", "knn", "retrieval", "diagnostics", "counterfactual"]


@dataclass
class CompareConfig:
    """``vidssl compare`` settings (CLI: dotted ``key=value``)."""

    out_dir: str = "runs/compare"
    entries: list[str] = field(default_factory=lambda: list(COMPARE_ENTRIES))
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 300
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig("r3d_tiny", None, {}))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=10))
    num_workers: int = 2
    threads: Optional[int] = None     # OMP_NUM_THREADS of the pretraining processes
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # entry -> params merged in
    eval: DemoEval = field(default_factory=lambda: DemoEval(protocols=list(COMPARE_PROTOCOLS)))


def entry_config(cfg: CompareConfig, name: str, root: str, seed: int, out: str):
    """The :class:`~vidssl.train.config.PretrainConfig` of one entry and seed."""
    from vidssl.train.config import DataConfig, MethodConfig, PretrainConfig, TrainConfig

    if name not in COMPARE_ENTRIES:
        raise VidsslError(f"unknown compare entry {name!r}; known: {', '.join(COMPARE_ENTRIES)}")
    e = COMPARE_ENTRIES[name]
    params = {**e["params"], **cfg.overrides.get(name, {})}
    encoder = entry_encoder(name, cfg.encoder)
    return PretrainConfig(
        data=DataConfig(dataset="synthetic", root=root, num_workers=cfg.num_workers, batch_size=e["batch_size"]),
        encoder=encoder, method=MethodConfig(e["method"], params), optim=dataclasses.replace(cfg.optim),
        train=TrainConfig(epochs=10_000, max_steps=max(1, cfg.steps // e.get("stages", 1)), seed=seed, out_dir=out, progress=False,
                          log_every=max(1, cfg.steps // 10), tensorboard=False))


def entry_encoder(name: str, encoder: EncoderConfig) -> EncoderConfig:
    """The encoder entry ``name`` trains (and its own random-init row evaluates): its recipe's own
    for an own-encoder entry (a ViT), else the compared ``encoder`` with the entry's arguments
    (its recipe's and its variant's) over its own."""
    e = COMPARE_ENTRIES[name]
    if "encoder" in e:
        return EncoderConfig(e["encoder"], None, dict(e["encoder_kwargs"]))
    return dataclasses.replace(encoder, kwargs={**encoder.kwargs, **e["encoder_kwargs"]})


def copy_pictures(run_dir: str, out_dir: str, name: str, seed: int) -> list[tuple[str, str]]:
    """The pictures a run drew of held clips (``reconstruction.png`` of VideoMAE) copied into the
    comparison folder as ``<entry>_seed<seed>_<picture>.png``; ``[(title, file name)]`` for the report."""
    import shutil

    out = []
    for picture in ("reconstruction",):
        src = os.path.join(run_dir, f"{picture}.png")
        if os.path.exists(src):
            dst = f"{name}_seed{seed}_{picture}.png"
            shutil.copyfile(src, os.path.join(out_dir, dst))
            out.append((f"{name} (seed {seed}): {picture} of held training clips (input | masked | reconstructed)",
                        dst))
    return out


def own_init_row(name: str, encoder: EncoderConfig | None = None) -> str | None:
    """The name of entry ``name``'s own random-init row, or None when it starts from the compared
    encoder's ``random init``: ``random init (<encoder>)`` for an entry that trains its own
    encoder, ``random init (input_mode=differences)`` for an entry whose encoder arguments (its
    recipe's and its variant's, over the compared ``encoder``'s: default ``r3d_tiny`` with its
    defaults) differ from the compared encoder's (same weights, another architecture argument:
    the recipes of CVRL and O3N, TCLR's dilated last stage)."""
    e = ENTRIES.get(name)
    if e is None:
        return None
    if e.own_encoder:
        return f"random init ({COMPARE_ENTRIES[name]['encoder']})"
    from vidssl.models.encoders import encoder_defaults

    encoder = encoder or EncoderConfig("r3d_tiny", None, {})
    base = {**encoder_defaults(encoder.name), **encoder.kwargs}
    changed = {k: v for k, v in COMPARE_ENTRIES[name]["encoder_kwargs"].items() if k not in base or base[k] != v}
    if changed:
        return "random init (" + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) + ")"
    return None


def baseline_rows(cfg: CompareConfig) -> list[tuple[str, EncoderConfig]]:
    """``(row name, encoder)`` of the chosen entries' own random-init rows, distinct, in order
    (see :func:`own_init_row`): the recipe's encoder for an own-encoder entry, the compared
    encoder with the entry's arguments (its recipe's and its variant's) for a variant."""
    found: list[tuple[str, EncoderConfig]] = []
    for name in cfg.entries:
        row = own_init_row(name, cfg.encoder)
        if row is None or any(row == seen for seen, _ in found):
            continue
        found.append((row, entry_encoder(name, cfg.encoder)))
    return found


def check_encoder_arguments(cfg: CompareConfig) -> None:
    """Fail before any work when an entry's encoder arguments (its recipe's and its variant's) are
    not arguments of the compared encoder: CVRL's and O3N's recipes set ``input_mode``, which only
    the R3D family takes."""
    from vidssl.models.encoders import encoder_defaults

    accepted = encoder_defaults(cfg.encoder.name)
    for name in cfg.entries:
        e = COMPARE_ENTRIES[name]
        if "encoder" in e:        # trains its own encoder
            continue
        unknown = sorted(set(e["encoder_kwargs"]) - set(accepted))
        if unknown:
            raise VidsslError(
                f"compare entry {name!r} sets encoder argument(s) {', '.join(unknown)} (its recipe "
                f"configs/{e['recipe']}.yaml or its variant), which encoder {cfg.encoder.name!r} "
                f"does not take; compare it with an encoder that does (r3d_tiny, r3d_18, r2plus1d_18, ...) "
                f"or leave the entry out")


def pretrain_in_child(pcfg, threads: Optional[int] = None) -> dict[str, float]:
    """Run ``vidssl pretrain`` on ``pcfg`` in a child process; its wall time and peak RSS."""
    from vidssl.config import to_yaml

    os.makedirs(pcfg.train.out_dir, exist_ok=True)
    path = os.path.join(pcfg.train.out_dir, "compare_config.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_yaml(pcfg))
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vidssl", "pretrain", "--config", path], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = out.strip().splitlines()[-1] if out.strip() else "no output"
        raise VidsslError(f"pretraining {pcfg.method.name} in {pcfg.train.out_dir} failed "
                          f"(exit {proc.returncode}): {tail}")
    return {"pretrain_s": time.perf_counter() - t0, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def _clips_per_s(out_dir: str) -> float:
    from vidssl.train.monitor import read_metrics

    recs = [r for r in read_metrics(os.path.join(out_dir, "metrics.jsonl")) if "clips_per_s" in r]
    return sum(r["clips_per_s"] for r in recs) / len(recs) if recs else float("nan")


def run_compare(root: str, cfg: CompareConfig, *, console=None, quiet: bool = False) -> dict[str, Any]:
    """Pretrain and evaluate every entry; write the table, JSON and report; return the summary.

    Writes into ``cfg.out_dir``, or the next free ``<out_dir>_vN`` when that folder holds an earlier
    comparison (:func:`~vidssl.runtime.rundir.claim_run_dir`; locked while it runs)."""
    from vidssl.runtime.rundir import claim_run_dir

    with claim_run_dir(cfg.out_dir, what="comparison") as out:
        return _run_compare(root, dataclasses.replace(cfg, out_dir=out), console=console, quiet=quiet)


def _run_compare(root: str, cfg: CompareConfig, *, console=None, quiet: bool = False) -> dict[str, Any]:
    from vidssl.models.checkpoint import load_encoder
    from vidssl.models.encoders import create_encoder

    unknown = [e for e in cfg.entries if e not in COMPARE_ENTRIES]
    if unknown:
        raise VidsslError(f"unknown compare entries {unknown}; known: {', '.join(COMPARE_ENTRIES)}")
    if not os.path.isdir(root):
        raise VidsslError(f"dataset folder {root} does not exist; run `vidssl make-synthetic --out {root}`")
    check_encoder_arguments(cfg)
    say = (lambda msg: None) if console is None else (lambda msg: console.rule(msg))
    run_eval = split1_evaluator(root, cfg.eval, cfg.num_workers, quiet)
    contenders: dict[str, dict[str, Any]] = {}
    pictures: list[tuple[str, str]] = []

    def record(name: str, seed: int, result: tuple[dict[str, float], dict[str, list[float]]],
               **extra: float) -> None:
        record_metrics(contenders, name, seed, {**result[0], **extra}, result[1])

    t_start = time.perf_counter()
    for seed in cfg.seeds:
        say(f"random init (seed {seed})")
        torch.manual_seed(seed)
        record("random init", seed, run_eval(create_encoder(cfg.encoder.name, **cfg.encoder.kwargs)))
        for row, enc in baseline_rows(cfg):   # the ViT entries' and the encoder variants' own baselines
            torch.manual_seed(seed)
            record(row, seed, run_eval(create_encoder(enc.name, **enc.kwargs)))
        for name in cfg.entries:
            out = os.path.join(cfg.out_dir, f"{name}_seed{seed}")
            say(f"{name} (seed {seed}, {cfg.steps} steps)")
            pcfg = entry_config(cfg, name, root, seed, out)
            cost = pretrain_in_child(pcfg, cfg.threads)
            runs = entry_runs(pcfg)               # multi-stage methods: the last stage is the result
            result = run_eval(load_encoder(os.path.join(runs[-1], "checkpoints", "last.pt")))
            clips = [_clips_per_s(r) for r in runs]
            record(name, seed, result, **cost, train_clips_per_s=sum(clips) / len(clips))
            contenders[name]["init_row"] = own_init_row(name, cfg.encoder) or "random init"
            pictures += copy_pictures(runs[-1], cfg.out_dir, name, seed)
    summary = comparison_summary(root, cfg, contenders, pictures, {"total": time.perf_counter() - t_start})
    table = write_comparison(cfg.out_dir, summary, cfg.eval)
    if console is not None:
        console.print(table, markup=False)
        console.print(f"report: {summary['report']}")
    return summary


def comparison_summary(root: str, cfg: CompareConfig, contenders: dict[str, dict[str, Any]],
                       pictures: Sequence[tuple[str, str]] = (), timings: dict[str, float] | None = None) -> dict[str, Any]:
    """The summary of a comparison whose runs are in ``cfg.out_dir``: the evaluated ``contenders``,
    the loss curves and pretext records read from the runs' ``metrics.jsonl`` (:func:`training_curves`),
    settings and notes (saved as ``comparison.json``, the input of the report)."""
    losses, pretext = training_curves(cfg, root)
    return {
        "title": "vidssl compare: methods on the synthetic action dataset (split 1)",
        "command": "vidssl compare", "contenders": contenders, "losses": losses, "pretext": pretext,
        "pictures": list(pictures), "timings": dict(timings or {}),
        "settings": {"root": root, "steps": cfg.steps, "seeds": cfg.seeds,
                     "optim": dataclasses.asdict(cfg.optim), "encoder": cfg.encoder.name,
                     "encoder_kwargs": dict(cfg.encoder.kwargs),
                     "eval": dataclasses.asdict(cfg.eval),
                     "entries": {n: {**COMPARE_ENTRIES[n], "params": {**COMPARE_ENTRIES[n]["params"],
                                                                       **cfg.overrides.get(n, {})}}
                                 for n in cfg.entries}},
        "notes": [bn_summary_note(cfg.eval),
                  "accuracies: mean [95% percentile bootstrap over the split-1 test videos and, with several "
                  "seeds, over the seeds]",
                  "action = motion label on the synthetic dataset (appearance independent of the class); "
                  "shape / texture / background probes measure appearance",
                  "peak RSS: the pretraining process's peak resident memory (CPU run)",
                  PRETEXT_NOTE],
        "plot_metrics": ["linear_top1", "diagnostics_probe/action/acc", "diagnostics_probe/shape/acc",
                         "retrieval_hit@1"],
        "chance": None,
    }


def write_comparison(out_dir: str, summary: dict[str, Any], ev: DemoEval | None = None) -> str:
    """Write ``comparison.json``, ``comparison.md`` and the report (PNGs + ``report.html``, whose
    path goes into ``summary["report"]``) into ``out_dir``; returns the table."""
    from vidssl.report import write_report

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "comparison.json"), "w") as f:
        json.dump(summary, f, indent=2)
    pretext = summary.get("pretext") or {}
    table = comparison_table(summary["contenders"], ev, pretext)
    with open(os.path.join(out_dir, "comparison.md"), "w") as f:
        f.write(table + "\n")
        if pretext:
            f.write(f"\n{PRETEXT_NOTE}\n\n![pretext-task curves per method](pretext.png)\n")
    summary["report"] = write_report(out_dir, summary)
    return table


# --- training curves and pretext records, read from the runs' metrics.jsonl


#: The part of an entry's logged steps its pretext record averages at the start and at the end.
PRETEXT_FRAC = 0.1

PRETEXT_NOTE = (f"pretext metric: each method's own task as its training logged it (vidssl.methods.method_pretext; "
                f"comparison.json 'pretext'), mean of the last {PRETEXT_FRAC:.0%} of logged steps [its logged "
                f"chance level]; the masked methods name none: their training loss")


def entry_runs(pcfg) -> list[str]:
    """The run folders of one entry and seed in training order: a multi-stage method's stages,
    else the run's own."""
    from vidssl.train.run import config_stages

    return [s.train.out_dir for _, s in config_stages(pcfg)] or [pcfg.train.out_dir]


def entry_records(runs: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """The ``metrics.jsonl`` records of one entry's runs as one curve (each stage's steps offset by
    the steps of the stages before it) and the steps after which stages 2, 3, ... begin."""
    from vidssl.train.monitor import read_metrics

    rows: list[dict[str, Any]] = []
    starts: list[int] = []
    steps = 0
    for k, run in enumerate(runs):
        if k:
            starts.append(steps)
        recs = read_metrics(os.path.join(run, "metrics.jsonl"))
        rows += [{**r, "step": steps + r["step"]} for r in recs]
        steps += recs[-1]["step"] if recs else 0
    return rows, starts


def pretext_record(method: str, params: dict[str, Any], seeds: list[int], rows: list[list[dict[str, Any]]],
                   stage_starts: Sequence[int] = (), frac: float = PRETEXT_FRAC) -> dict[str, Any]:
    """An entry's ``pretext`` record from its records per seed (:func:`entry_records`): ``metric``,
    ``what``, ``frac``, ``chance``, ``first`` and ``last`` (means over the seeds that have them;
    ``None`` where none does), ``seeds`` (per seed: ``seed`` and :func:`~vidssl.train.monitor.pretext_progress`'s
    ``first``, ``last``, ``chance``, ``steps``), ``curves`` (per seed ``[(step, value)]``) and
    ``stage_starts``."""
    from vidssl.train.monitor import pretext_progress

    per_seed = [pretext_progress(r, method, params, frac=frac) for r in rows]
    metric, what = per_seed[0]["metric"], per_seed[0]["what"]

    def mean(key: str) -> Optional[float]:
        vals = [p[key] for p in per_seed if p[key] is not None]
        return sum(vals) / len(vals) if vals else None

    return {"metric": metric, "what": what, "frac": frac,
            "chance": mean("chance"), "first": mean("first"), "last": mean("last"),
            "seeds": [{"seed": seed, **{k: p[k] for k in ("first", "last", "chance", "steps")}}
                      for seed, p in zip(seeds, per_seed)],
            "curves": [[(r["step"], float(r[metric])) for r in rs if r.get(metric) is not None] for rs in rows],
            "stage_starts": list(stage_starts)}


def training_curves(cfg: CompareConfig, root: str = "") -> tuple[dict[str, list], dict[str, dict[str, Any]]]:
    """Every entry's loss curves (``{entry: [[(step, loss)] per seed]}``) and pretext record
    (:func:`pretext_record`, with the entry's method parameters: the recipe's, the variant's and
    ``cfg.overrides``) read from its runs under ``cfg.out_dir``."""
    losses: dict[str, list] = {}
    pretext: dict[str, dict[str, Any]] = {}
    for name in cfg.entries:
        per_seed, starts, pcfg = [], [], None
        for seed in cfg.seeds:
            pcfg = entry_config(cfg, name, root, seed, os.path.join(cfg.out_dir, f"{name}_seed{seed}"))
            rows, starts = entry_records(entry_runs(pcfg))
            per_seed.append(rows)
        if pcfg is None:
            continue
        losses[name] = [[(r["step"], r["loss"]) for r in rows if "loss" in r] for rows in per_seed]
        pretext[name] = pretext_record(pcfg.method.name, dict(pcfg.method.params), list(cfg.seeds), per_seed, starts)
    return losses, pretext


def table_columns(contenders: dict[str, dict[str, Any]], ev: DemoEval | None = None) -> list[tuple[str, str, float]]:
    """:data:`COLUMNS`, plus the action linear probe under the other BN mode when it differs."""
    from vidssl.report import bn_differs

    cols = list(COLUMNS)
    for other in ("keep", "recompute"):
        key = f"bn_{other}/linear_top1"
        if any(key in c["metrics"] for c in contenders.values()) and bn_differs(contenders, key):
            cols.insert(1, (key, f"linear probe, BN {other} %", 100.0))
    if any(COUNTERFACTUAL_COLUMN[0] in c["metrics"] for c in contenders.values()):
        at = next(i for i, col in enumerate(cols) if col[0] == "retrieval_hit@1")
        cols.insert(at, COUNTERFACTUAL_COLUMN)
    if ev is not None:
        cols[0] = (cols[0][0], f"action linear probe (BN {ev.bn}) %", cols[0][2])
    return cols


def comparison_table(contenders: dict[str, dict[str, Any]], ev: DemoEval | None = None,
                     pretext: dict[str, dict[str, Any]] | None = None) -> str:
    """Markdown: one row per contender; accuracies as mean [95% bootstrap interval over the test
    videos and seeds], other columns mean (± std over seeds when more than one). With ``pretext``
    records (:func:`pretext_record`), a column of :func:`pretext_cell` before the training costs."""
    from vidssl.report import fmt_cell, mean_std

    columns = table_columns(contenders, ev)
    if any(paired_gain(contenders, name) is not None for name in contenders):
        columns.insert(1, ("gain", "gain over its own init, paired (points)", 100.0))
    if pretext:
        frac = next(iter(pretext.values())).get("frac", PRETEXT_FRAC)
        at = next((i for i, (k, _, _) in enumerate(columns) if k == "train_clips_per_s"), len(columns))
        columns.insert(at, ("pretext", f"pretext metric, last {frac:.0%} [chance]", 1.0))
    head = "| method | " + " | ".join(h for _, h, _ in columns) + " |"
    rows = [head, "|---|" + "---:|" * len(columns)]
    for name, c in contenders.items():
        cells = []
        for key, _, scale in columns:
            if key == "pretext":
                cells.append(pretext_cell((pretext or {}).get(name)))
                continue
            if key == "gain":
                gain = paired_gain(contenders, name)
                cells.append("-" if gain is None else
                             f"{scale * gain[0]:+.1f} [{scale * gain[1]:+.1f}, {scale * gain[2]:+.1f}]")
                continue
            values = c["metrics"].get(key)
            if not values:
                cells.append("-")
                continue
            if scale != 1.0:
                cells.append(fmt_cell(c, key, scale))
                continue
            m, s = mean_std(values)
            digits = 1 if key in ("diagnostics_effective_rank", "train_clips_per_s") else 0
            cell = f"{scale * m:.{digits}f}"
            if len(values) > 1:
                cell += f" ± {scale * s:.{digits}f}"
            cells.append(cell)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


#: The metric whose paired gain over random init the table shows.
GAIN_METRIC = "linear_top1"


def init_row(contenders: dict[str, dict[str, Any]], name: str) -> str | None:
    """The random-init row an entry started from: the one its run recorded (``init_row``), else
    its own row by :func:`own_init_row` when the results have it, else ``random init`` (None for
    a random-init row itself). Results written before runs recorded their row are read with
    today's entries and the default compared encoder: rename their entries first where a name
    changed meaning (``cvrl`` / ``o3n`` were RGB before 2026-12-07, docs/compare.md)."""
    if name.startswith("random init"):
        return None
    recorded = contenders.get(name, {}).get("init_row")
    if recorded in contenders:
        return recorded
    row = own_init_row(name)
    if row is not None and (row in contenders or ENTRIES[name].own_encoder):
        return row
    return "random init"          # results older than a variant's own row: the compared init


def paired_gain(contenders: dict[str, dict[str, Any]], name: str, metric: str = GAIN_METRIC):
    """``(mean, low, high)`` of ``name``'s ``metric`` minus its random init's, paired by seed and
    test video: seed ``s`` of an entry starts from exactly the weights of ``random init`` seed
    ``s`` (both are ``torch.manual_seed(s)`` then the encoder; a test checks it), so the
    difference of the two per-video outcomes is bootstrapped over the seeds both have and the
    test videos (:func:`~vidssl.eval.intervals.bootstrap_interval`), which removes the spread
    between initialisations that an unpaired comparison of two intervals carries. None when
    there is no such row or no common seed with per-video outcomes."""
    import numpy as np

    from vidssl.eval.intervals import bootstrap_interval

    base = init_row(contenders, name)
    if base is None or base not in contenders:
        return None
    c, b = contenders[name], contenders[base]
    pv_c, pv_b = c.get("per_video", {}).get(metric), b.get("per_video", {}).get(metric)
    if not pv_c or not pv_b:
        return None
    where = {s: i for i, s in enumerate(b["seeds"])}
    diffs = [np.asarray(pv_c[i], float) - np.asarray(pv_b[where[s]], float)
             for i, s in enumerate(c["seeds"]) if s in where and i < len(pv_c) and where[s] < len(pv_b)
             and len(pv_c[i]) == len(pv_b[where[s]])]
    if not diffs:
        return None
    d = np.stack(diffs)
    lo, hi = bootstrap_interval(d)
    return float(d.mean()), lo, hi


def pretext_cell(record: dict[str, Any] | None) -> str:
    """``last [chance]`` of a pretext record (``last ± std [chance]`` over several seeds; no
    ``[chance]`` when none was logged); ``loss last`` for a method that names no pretext metric."""
    from vidssl.report import mean_std

    if record is None:
        return "-"
    lasts = [s["last"] for s in record["seeds"] if s["last"] is not None]
    if not lasts:
        return "n/a"
    m, sd = mean_std(lasts)
    cell = _short(m) + (f" ± {_short(sd)}" if len(lasts) > 1 else "")
    if record["chance"] is not None:
        cell += f" [{_short(record['chance'])}]"
    return f"loss {cell}" if record["metric"] == "loss" else cell


def _short(v: float) -> str:
    """Two decimals; two significant digits under 0.01 (a chance of 1 in 129 is not 0.00)."""
    return f"{v:.2f}" if v == 0 or abs(v) >= 0.01 else f"{v:.2g}"
