"""Results of an evaluation run: per-split and mean numbers, JSON and a markdown table.

Accuracies and hit rates are stored as fractions in ``[0, 1]`` and shown as percentages in the
markdown table; NaN (a number that could not be computed) is stored as JSON ``null``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidssl.errors import VidsslError

Metrics = dict[str, dict[str, float]]   # protocol -> metric -> value

#: Hyper-parameters reported per split but not averaged across splits.
NOT_AVERAGED = frozenset({"weight_decay"})


def is_percent(metric: str) -> bool:
    """Whether ``metric`` is a fraction shown as a percentage."""
    return (metric in ("top1", "top5", "val_top1") or metric.startswith("hit@")
            or metric.endswith("/acc") or metric.endswith("/chance"))


def format_value(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if is_percent(metric):
        return f"{100.0 * value:.1f}"
    if metric in NOT_AVERAGED:
        return f"{value:.0e}"
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

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none({
            "dataset": self.dataset, "encoder": self.encoder, "splits": list(self.splits),
            "protocols": list(self.protocols),
            "per_split": {str(s): self.per_split[s] for s in self.splits if s in self.per_split},
            "mean": self.mean, "std": self.std, "info": self.info,
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
        """A table: one row per ``(protocol, metric)``, one column per split, then the mean."""
        multi = len(self.splits) > 1
        head = ["protocol", "metric", *(f"split {s}" for s in self.splits),
                "mean ± std" if multi else "mean"]
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
        for p, m in self.metric_names():
            label = f"{m} (%)" if is_percent(m) else m
            cells = [format_value(m, self.per_split.get(s, {}).get(p, {}).get(m)) for s in self.splits]
            mu = mean.get(p, {}).get(m)
            avg = format_value(m, mu)
            if multi and mu is not None:
                sd = std[p][m] * (100.0 if is_percent(m) else 1.0)
                avg += f" ± {sd:.1f}" if is_percent(m) else f" ± {sd:.2g}"
            lines.append("| " + " | ".join([p, label, *cells, avg]) + " |")
        notes = self.info.get("notes", [])
        if notes:
            lines += [""] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"
