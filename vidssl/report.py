"""The demo's report: ``report.html`` with PNG plots, and a one-screen terminal summary.

Input is a plain dict (also saved as ``summary.json``)::

    title, command, settings: {...}, notes: [str, ...]
    contenders: {name: {"seeds": [int], "metrics": {metric: [value per seed]},
                        "per_video": {metric: [[0/1 per test video] per seed]}}}
    losses: {name: [[(step, loss), ...] per seed]}
    pretext: {name: {"metric", "what", "chance", "curves": [[(step, value), ...] per seed],
                     "stage_starts": [step, ...]}}  (optional; vidssl compare)
    retrieval: [{"query": (path, label), "neighbors": [(path, label), ...]}]  (optional)
    timings: {stage: seconds}

Plots use matplotlib's non-interactive Agg backend; frames for the retrieval strips are
decoded with vidssl's own decoder.
"""

from __future__ import annotations

import html
import os
import statistics
from typing import Any, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(values: Sequence[float], scale: float = 100.0) -> str:
    m, s = mean_std(values)
    if not np.isfinite(m):
        return "n/a"
    return f"{m * scale:.1f} ± {s * scale:.1f}" if len(values) > 1 else f"{m * scale:.1f}"


#: Bootstrap settings of the demo / compare intervals (as vidssl eval's defaults).
INTERVAL_RESAMPLES, INTERVAL_SEED = 1000, 0


def contender_interval(contender: dict[str, Any], metric: str) -> list[float] | None:
    """95% percentile-bootstrap interval of ``metric`` over the test videos and, with several
    seeds, over the seeds (:func:`vidssl.eval.intervals.bootstrap_interval` on the ``(seeds,
    videos)`` outcomes); ``None`` without per-video outcomes."""
    from vidssl.eval.intervals import bootstrap_interval

    rows = (contender.get("per_video") or {}).get(metric)
    if not rows or len({len(r) for r in rows}) != 1 or not len(rows[0]):
        return None
    return list(bootstrap_interval([np.asarray(rows, dtype=np.float64)], resamples=INTERVAL_RESAMPLES,
                                   seed=INTERVAL_SEED))


def fmt_cell(contender: dict[str, Any], metric: str, scale: float = 100.0, digits: int = 1) -> str:
    """``mean [low, high]`` (the bootstrap interval, when per-video outcomes exist), else
    ``mean ± std`` over seeds (or the single value)."""
    values = contender["metrics"].get(metric, [])
    m, _ = mean_std(values)
    if not np.isfinite(m):
        return "n/a"
    iv = contender_interval(contender, metric)
    if iv is None:
        if digits != 1:
            return f"{m * scale:.{digits}f}"
        return fmt(values, scale)
    return f"{m * scale:.{digits}f} [{iv[0] * scale:.{digits}f}, {iv[1] * scale:.{digits}f}]"


def bn_differs(contenders: dict[str, dict[str, Any]], metric: str) -> bool:
    """Whether a ``bn_keep/...`` / ``bn_recompute/...`` metric differs from the headline one for
    some contender (BN-free encoders give identical numbers: those rows are hidden)."""
    base = metric.split("/", 1)[1]
    for c in contenders.values():
        a, b = c["metrics"].get(metric), c["metrics"].get(base)
        if a is not None and b is not None and not np.allclose(a, b, equal_nan=True):
            return True
    return False


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(losses: dict[str, list[list[tuple[int, float]]]], path: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (name, runs) in enumerate(losses.items()):
        for s, run in enumerate(runs):
            if run:
                steps, vals = zip(*run)
                ax.plot(steps, vals, color=f"C{k}", alpha=0.8, lw=1,
                        label=name if s == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (fewer where the series ends)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(len(v))
    lo, hi = np.maximum(idx - window // 2, 0), np.minimum(idx + window // 2 + 1, len(v))
    return (c[hi] - c[lo]) / (hi - lo)


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the mean over the curves that logged each step."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            if np.isfinite(value):
                by_step.setdefault(int(step), []).append(float(value))
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([statistics.fmean(by_step[s]) for s in steps])


def plot_pretext(pretext: dict[str, dict[str, Any]], path: str) -> str:
    """One panel per entry: its pretext metric against step for each seed (light), their mean's
    moving average (over a tenth of the steps), the mean logged chance (dashed) and the steps where
    a multi-stage method's stages begin (dotted). ``pretext``: ``{entry: record}`` as
    :func:`vidssl.compare.pretext_record` writes it."""
    import textwrap

    plt = _plt()
    cols = min(3, len(pretext))
    rows = -(-len(pretext) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(pretext):]:
        ax.axis("off")
    for k, (ax, (name, rec)) in enumerate(zip(axes.flat, pretext.items())):
        for curve in rec["curves"]:
            if curve:
                steps, vals = zip(*curve)
                ax.plot(steps, vals, color=f"C{k}", alpha=0.25, lw=0.8)
        steps, mean = mean_curve(rec["curves"])
        if len(steps):
            ax.plot(steps, moving_average(mean, max(1, len(steps) // 10)), color=f"C{k}", lw=1.6,
                    label="mean over seeds, smoothed")
        if rec.get("chance") is not None:
            ax.axhline(rec["chance"], color="gray", ls="--", lw=1, label="chance")
        for start in rec.get("stage_starts", []):
            ax.axvline(start, color="black", ls=":", lw=0.8)
        ax.set_title(textwrap.fill(f"{name}: {rec['what']}", 48), fontsize=7)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel(rec["metric"], fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_metrics(contenders: dict[str, dict[str, Any]], metrics: Sequence[str], path: str,
                 chance: float | None = None) -> str:
    """Grouped bars (mean over seeds, error bar = std) of ``metrics`` per contender."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(metrics) * len(contenders) / 2), 3.8))
    width = 0.8 / max(1, len(contenders))
    x = np.arange(len(metrics))
    for k, (name, c) in enumerate(contenders.items()):
        stats = [mean_std(c["metrics"].get(m, [])) for m in metrics]
        means = [100 * m for m, _ in stats]
        stds = [100 * s for _, s in stats]
        ax.bar(x + (k - (len(contenders) - 1) / 2) * width, means, width, yerr=stds,
               label=name, color=f"C{k}", capsize=3)
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance")
    labels = [m.replace("diagnostics_probe/", "probe: ").replace("/acc", "").replace("_", " ")
              for m in metrics]
    ax.set_xticks(x, labels, fontsize=8, rotation=20)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _frames(path: str, n: int) -> np.ndarray:
    from vidssl.data.decoders import open_video

    with open_video(path) as dec:
        total = dec.metadata.num_frames
        idx = np.linspace(0, total - 1, n).round().astype(int).tolist()
        return dec.get_frames(idx).permute(0, 2, 3, 1).numpy()  # (n, H, W, C)


def plot_retrieval(examples: list[dict[str, Any]], path: str, frames: int = 4) -> str:
    """One row per query: the query's frame strip, then its nearest training videos'."""
    plt = _plt()
    cols = 1 + max(len(e["neighbors"]) for e in examples)
    fig, axes = plt.subplots(len(examples), cols, figsize=(2.2 * cols, 1.0 * len(examples) + 0.4),
                             squeeze=False)
    for r, ex in enumerate(examples):
        items = [ex["query"], *ex["neighbors"]]
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(items):
                continue
            vid, label = items[c]
            try:
                strip = np.concatenate(list(_frames(vid, frames)), axis=1)
                ax.imshow(strip)
            except Exception as err:  # noqa: BLE001 - a report never dies on one bad file
                ax.text(0.5, 0.5, f"unreadable: {type(err).__name__}", ha="center", fontsize=6)
            hit = c == 0 or label == ex["query"][1]
            ax.set_title(("query: " if c == 0 else f"#{c}: ") + str(label), fontsize=7,
                         color="black" if hit else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def metric_table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    contenders = summary["contenders"]
    metrics: list[str] = []
    for c in contenders.values():
        metrics += [m for m in c["metrics"] if m not in metrics]
    rows = []
    for m in metrics:
        if any(h in m for h in HIDDEN):
            continue
        if m.startswith("bn_") and not bn_differs(contenders, m):
            continue
        scale = 1.0 if any(u in m for u in UNSCALED) else 100.0
        rows.append([m] + [fmt_cell(c, m, scale=scale) if m in c["metrics"]
                           else "-" for c in contenders.values()])
    return ["metric", *contenders], rows


#: Metrics shown as they are (not as percentages), and ones left out of the tables.
UNSCALED = ("effective_rank", "alignment", "uniformity", "r2", "clips_per_s")
HIDDEN = ("weight_decay", "val_top1", "/lambda", "effective_rank/dim")


def write_report(out_dir: str, summary: dict[str, Any]) -> str:
    """Write the PNGs and ``report.html`` into ``out_dir``; returns the HTML path."""
    os.makedirs(out_dir, exist_ok=True)
    images = []
    if summary.get("losses"):
        images.append(("Training loss", plot_losses(summary["losses"],
                                                    os.path.join(out_dir, "loss.png"))))
    if summary.get("pretext"):
        images.append(("Pretext task per method: its own metric against step (light: seeds; "
                       "line: their mean, smoothed; dashed: chance; dotted: stage boundaries)",
                       plot_pretext(summary["pretext"], os.path.join(out_dir, "pretext.png"))))
    probes = [m for m in summary.get("plot_metrics", []) if any(
        m in c["metrics"] for c in summary["contenders"].values())]
    if probes:
        images.append(("Probe accuracies (mean ± std over seeds)", plot_metrics(
            summary["contenders"], probes, os.path.join(out_dir, "probes.png"),
            chance=summary.get("chance"))))
    if summary.get("retrieval"):
        images.append(("Retrieval: test queries and their nearest training videos "
                       "(red = wrong class)",
                       plot_retrieval(summary["retrieval"], os.path.join(out_dir, "retrieval.png"))))
    for title, name in summary.get("pictures", []):   # files a run drew, already copied into out_dir
        if os.path.exists(os.path.join(out_dir, name)):
            images.append((title, name))
    head, rows = metric_table_rows(summary)
    e = html.escape
    table = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows) + "</table>"
    settings = "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>"
                       for k, v in summary.get("settings", {}).items())
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in summary.get("timings", {}).items())
    notes = "".join(f"<li>{e(n)}</li>" for n in summary.get("notes", []))
    figs = "".join(f"<h2>{e(t)}</h2><img src='{e(os.path.basename(p))}'>" for t, p in images)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(summary['title'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>{e(summary['title'])}</h1><p><code>{e(summary.get('command', ''))}</code></p>
<h2>Results (accuracies in %: mean [95% bootstrap interval over test videos and seeds]; other
metrics mean ± std over seeds)</h2>{table}<ul>{notes}</ul>{figs}
<h2>Settings</h2><table>{settings}</table><p>Time: {e(timings)}</p></body></html>"""
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)
    return path


def print_summary(summary: dict[str, Any], console=None) -> None:
    """The one-screen terminal version of the report table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    head, rows = metric_table_rows(summary)
    keep = set(summary.get("plot_metrics", [])) | {"diagnostics_effective_rank", "train_clips_per_s"}
    rows = [r for r in rows if r[0] in keep] or rows
    table = Table(title=summary["title"])
    for h in head:
        table.add_column(h, justify="left" if h == "metric" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for n in summary.get("notes", []):
        console.print(f"- {n}", markup=False)
    console.print("(all metrics, plots and settings: report.html)")
