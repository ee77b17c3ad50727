"""Results of an evaluation run: per-split and mean numbers, intervals, JSON and a markdown table.

Accuracies and hit rates are stored as fractions in ``[0, 1]`` and shown as percentages in the
markdown table; NaN (a number that could not be computed) is stored as JSON ``null``. A metric
that is a mean over test videos keeps its per-video outcomes (``info["per_video"]``: per split
and protocol, the scored videos and one 0/1 value per video and metric); its 95% interval is a
percentile bootstrap over those videos (:mod:`vidssl.eval.intervals`; for the mean over splits,
each split resampled on its own) and is shown as ``41.9 [37.5, 46.3]``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidssl.errors import VidsslError

Metrics = dict[str, dict[str, float]]   # protocol -> metric -> value

#: Hyper-parameters reported per split but not averaged across splits.
NOT_AVERAGED = frozenset({"weight_decay", "lr", "epochs"})


def is_percent(metric: str) -> bool:
    """Whether ``metric`` is a fraction shown as a percentage."""
    return (metric in ("top1", "top5", "val_top1", "motion_preference", "action_share")
            or metric.startswith("hit@")
            or metric.endswith("/acc") or metric.endswith("/chance"))


def format_value(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if is_percent(metric):
        return f"{100.0 * value:.1f}"
    if metric in ("weight_decay", "lr"):
        return f"{value:.0e}"
    if metric in NOT_AVERAGED:
        return f"{value:g}"
    return f"{value:.4g}"


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def _metrics_from_json(d: dict) -> Metrics:
    return {p: {m: (float("nan") if v is None else float(v)) for m, v in ms.items()}
            for p, ms in d.items()}


@dataclass
class EvalResults:
    """Numbers of one ``evaluate`` call.

    Attributes:
        dataset, encoder: what was evaluated; splits, protocols: in run order.
        per_split: ``{split: {protocol: {metric: value}}}``.
        info: settings, feature counts, skipped files, timings, notes (JSON-serialisable).
    """

    dataset: str
    encoder: str
    splits: list[int]
    protocols: list[str]
    per_split: dict[int, Metrics] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def _collect(self, protocol: str, metric: str) -> list[float]:
        vals = [self.per_split[s].get(protocol, {}).get(metric) for s in self.splits
                if s in self.per_split]
        return [v for v in vals if v is not None and math.isfinite(v)]

    def metric_names(self) -> list[tuple[str, str]]:
        """``(protocol, metric)`` pairs in first-seen order."""
        seen: dict[tuple[str, str], None] = {}
        for p in self.protocols:
            for s in self.splits:
                for m in self.per_split.get(s, {}).get(p, {}):
                    seen.setdefault((p, m), None)
        return list(seen)

    @property
    def mean(self) -> Metrics:
        """Mean over splits of every metric (finite values only; hyper-parameters left out)."""
        out: Metrics = {}
        for p, m in self.metric_names():
            vals = self._collect(p, m)
            if m not in NOT_AVERAGED and vals:
                out.setdefault(p, {})[m] = sum(vals) / len(vals)
        return out

    @property
    def std(self) -> Metrics:
        """Population standard deviation over splits (0 for one split)."""
        out: Metrics = {}
        for p, m in self.metric_names():
            vals = self._collect(p, m)
            if m not in NOT_AVERAGED and vals:
                mu = sum(vals) / len(vals)
                out.setdefault(p, {})[m] = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
        return out

    # ---------------------------------------------------------------- intervals
    def outcomes(self, split: int, protocol: str, metric: str) -> list[float] | None:
        """Per-video outcomes of ``metric`` on ``split`` (``None`` when it has none)."""
        entry = self.info.get("per_video", {}).get(str(split), {}).get(protocol)
        return None if entry is None else entry["outcomes"].get(metric)

    def _interval_settings(self) -> dict[str, Any]:
        c = (self.info.get("config") or {}).get("intervals") or {}
        return {"level": float(c.get("level", 0.95)), "resamples": int(c.get("resamples", 1000)),
                "seed": int(c.get("seed", 0))}

    @property
    def intervals(self) -> dict[str, Any]:
        """``{"per_split": {split: {protocol: {metric: [low, high]}}}, "mean": {...}, "level",
        "resamples", "seed"}``: bootstrap intervals of every metric with per-video outcomes (the
        mean's only when every split has them)."""
        from vidssl.eval.intervals import bootstrap_interval

        if getattr(self, "_intervals", None) is not None:
            return self._intervals
        opts = self._interval_settings()
        per_split: dict[str, dict[str, dict[str, list[float]]]] = {}
        mean: dict[str, dict[str, list[float]]] = {}
        for p, m in self.metric_names():
            groups = []
            for s in self.splits:
                values = self.outcomes(s, p, m)
                if values is None or not len(values):
                    continue
                lo, hi = bootstrap_interval([np.asarray(values)], **opts)
                per_split.setdefault(str(s), {}).setdefault(p, {})[m] = [lo, hi]
                groups.append(np.asarray(values))
            if groups and len(groups) == len(self.splits):
                mean.setdefault(p, {})[m] = list(bootstrap_interval(groups, **opts))
        self._intervals = {"per_split": per_split, "mean": mean, **opts}
        return self._intervals

    def interval(self, protocol: str, metric: str, split: int | None = None) -> list[float] | None:
        """``[low, high]`` of ``metric`` on ``split`` (``None``: of the mean over splits)."""
        iv = self.intervals
        table = iv["mean"] if split is None else iv["per_split"].get(str(split), {})
        return table.get(protocol, {}).get(metric)

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none({
            "dataset": self.dataset, "encoder": self.encoder, "splits": list(self.splits),
            "protocols": list(self.protocols),
            "per_split": {str(s): self.per_split[s] for s in self.splits if s in self.per_split},
            "mean": self.mean, "std": self.std, "intervals": self.intervals, "info": self.info,
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalResults":
        try:
            return cls(str(d["dataset"]), str(d["encoder"]), [int(s) for s in d["splits"]],
                       [str(p) for p in d["protocols"]],
                       {int(s): _metrics_from_json(m) for s, m in d["per_split"].items()},
                       dict(d.get("info", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise VidsslError(f"not an evaluation results object: {err!r}") from None

    def to_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "EvalResults":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise VidsslError(f"cannot read results {path}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise VidsslError(f"results file {path} is not JSON: {err.msg} at line {err.lineno}") from None
        return cls.from_dict(d)

    def to_markdown(self) -> str:
        """A table: one row per ``(protocol, metric)``, one column per split, then the mean;
        a metric with per-video outcomes shows its bootstrap interval, ``41.9 [37.5, 46.3]``."""
        multi = len(self.splits) > 1
        head = ["protocol", "metric", *(f"split {s}" for s in self.splits),
                "mean ± std [interval]" if multi else "mean"]
        lines = [f"## {self.encoder} on {self.dataset}", ""]
        prov = self.info.get("provenance")
        if prov:  # which run, which code, which videos: a table that says what it is
            from vidssl.provenance import versions_line

            what = [f"run {prov['run']}, step {prov['checkpoint_step']}" if prov.get("run") else None,
                    f"seed {prov.get('seed')}", versions_line(prov),
                    "split hash " + ", ".join(f"{k}: {v}" for k, v in (prov.get("split_hash") or {}).items()),
                    f"`{prov.get('command')}`"]
            lines += [" · ".join(w for w in what if w), ""]
        lines += ["| " + " | ".join(head) + " |",
                 "|---|---|" + "---:|" * (len(head) - 2)]
        mean, std = self.mean, self.std

        def with_interval(text: str, iv: list[float] | None) -> str:
            if iv is None or text == "–":
                return text
            return f"{text} [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"

        for p, m in self.metric_names():
            label = f"{m} (%)" if is_percent(m) else m
            cells = [with_interval(format_value(m, self.per_split.get(s, {}).get(p, {}).get(m)),
                                   self.interval(p, m, s) if is_percent(m) else None) for s in self.splits]
            mu = mean.get(p, {}).get(m)
            avg = format_value(m, mu)
            if multi and mu is not None:
                sd = std[p][m] * (100.0 if is_percent(m) else 1.0)
                avg += f" ± {sd:.1f}" if is_percent(m) else f" ± {sd:.2g}"
            if is_percent(m):
                avg = with_interval(avg, self.interval(p, m))
            lines.append("| " + " | ".join([p, label, *cells, avg]) + " |")
        notes = self.info.get("notes", [])
        if notes:
            lines += [""] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"
