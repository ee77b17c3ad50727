"""What a run reports: a progress bar, periodic log lines, metrics.jsonl, TensorBoard and
(optionally) Weights & Biases.

Only rank 0 writes. TensorBoard and W&B receive the same scalars (``train/<name>`` per step) and
the same resolved config (TensorBoard: a text summary ``config``; W&B: the run config). The W&B
run id is kept in ``OUT_DIR/wandb_id.txt``, so a resumed run continues the same W&B run;
``train.wandb.mode: offline`` writes under ``OUT_DIR/wandb`` without a network (``wandb sync``
uploads it later). ``metrics.jsonl`` holds one JSON object per optimizer step (``step``,
``loss`` and the method's other scalars, ``lr``, ``clips_per_s``, ``data_wait``); a resumed
run appends, so readers keep the last record of each step (:func:`read_metrics`), and
:func:`pretext_progress` says from it whether the run learned its method's own task.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import Any, Iterable, Mapping

from vidssl.errors import MissingDependencyError, VidsslError
from vidssl.runtime.progress import ProgressBar

log = logging.getLogger("vidssl")


class RunMonitor:
    def __init__(self, out_dir: str, total_steps: int, *, enabled: bool = True,
                 progress: bool = True, tensorboard: bool = True, log_every: int = 10,
                 start_step: int = 0, config: dict[str, Any] | None = None, wandb: Any = None):
        self.enabled = enabled
        self.log_every = max(1, int(log_every))
        self.total_steps = total_steps
        self._metrics = None
        self._writer = None
        self._progress = None
        self._wandb = None
        if not enabled:
            return
        os.makedirs(out_dir, exist_ok=True)
        self._metrics = open(os.path.join(out_dir, "metrics.jsonl"), "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=start_step)
                if config is not None:
                    self._writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", start_step)
            except ImportError:
                log.warning("tensorboard is not installed: no TensorBoard scalars "
                            "(pip install tensorboard)")
        if wandb is not None and wandb.enabled:
            self._wandb = start_wandb(out_dir, wandb, config or {})
        if progress:
            self._progress = ProgressBar(total_steps, "pretrain", completed=start_step, stats=True)

    def step(self, step: int, scalars: dict[str, float]) -> None:
        """Record optimizer step ``step`` (1-based count of steps done)."""
        if not self.enabled:
            return
        record = {"step": step, **{k: float(v) for k, v in scalars.items()}}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._writer is not None:
            for k, v in scalars.items():
                self._writer.add_scalar(f"train/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": float(v) for k, v in scalars.items()}, step=step)
        stats = (f"loss {scalars['loss']:.4f}  lr {scalars.get('lr', 0):.2e}  "
                 f"{scalars.get('clips_per_s', 0):.1f} clips/s  "
                 f"data wait {100 * scalars.get('data_wait', 0):.0f}%")
        if self._progress is not None:
            self._progress.update(step, stats)
        elif step % self.log_every == 0 or step == self.total_steps:
            log.info("step %d/%d  %s", step, self.total_steps, stats)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._writer is not None:
            self._writer.close()
        if self._metrics is not None:
            self._metrics.close()
        if self._wandb is not None:
            self._wandb.finish()


def start_wandb(out_dir: str, cfg: Any, config: dict[str, Any]):
    """A W&B run for ``OUT_DIR`` (resumed when ``wandb_id.txt`` names one), one-line errors."""
    try:
        import wandb
    except ImportError:
        raise MissingDependencyError(package="wandb", extra="wandb",
                                     feature="Weights & Biases logging (train.wandb.enabled)") from None
    id_file = os.path.join(out_dir, "wandb_id.txt")
    run_id = open(id_file, encoding="utf-8").read().strip() if os.path.exists(id_file) else None
    run_id = run_id or secrets.token_hex(4)
    try:
        run = wandb.init(project=cfg.project, entity=cfg.entity, mode=cfg.mode, tags=list(cfg.tags),
                         name=cfg.name or os.path.basename(os.path.normpath(out_dir)), dir=out_dir,
                         config=config, id=run_id, resume="allow")
    except Exception as err:  # noqa: BLE001 - auth / network / settings errors of many kinds
        text = " ".join(str(err).split())[:160]
        raise VidsslError(f"Weights & Biases could not start a run ({text}); log in (wandb login), or "
                          f"set train.wandb.mode=offline, or train.wandb.enabled=false") from None
    with open(id_file, "w", encoding="utf-8") as f:
        f.write(run_id)
    return run


def read_metrics(path: str) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` ordered by step, keeping the last one written per step."""
    by_step: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed run
                continue
            by_step[int(rec["step"])] = rec
    return [by_step[s] for s in sorted(by_step)]


def pretext_progress(rows_or_path: str | os.PathLike | Iterable[Mapping[str, Any]], method: str, params: dict[str, Any] | None = None, *,
                     frac: float = 0.1) -> dict[str, Any]:
    """How a run did on its method's own task: the pretext metric (:func:`vidssl.methods.method_pretext`;
    ``"loss"`` for a method that names none, the masked-modelling ones) averaged over the first and
    the last ``frac`` of the logged steps that carry it.

    ``rows_or_path``: a ``metrics.jsonl`` path (read with :func:`read_metrics`) or its records, in
    order (e.g. a multi-stage run's stages one after another). Returns ``metric``, ``what``,
    ``chance`` (the mean logged ``"chance"``; ``None`` when no record has one, e.g. runs older than
    that key), ``first``, ``last`` (``None`` when no record carries the metric) and ``steps`` (how
    many records carry it). The part averaged is ``frac`` of them, rounded, at least one record.
    """
    import math

    from vidssl.methods import method_pretext

    if not 0.0 < frac <= 1.0:
        raise VidsslError(f"pretext_progress: frac must be in (0, 1], got {frac!r}")
    if isinstance(rows_or_path, (str, os.PathLike)):
        rows = read_metrics(os.fspath(rows_or_path))
    else:
        rows = list(rows_or_path)
    pretext = method_pretext(method, params)
    metric, what = (pretext.metric, pretext.what) if pretext is not None else ("loss", "training loss")

    def values(key: str) -> list[float]:
        out = [float(r[key]) for r in rows if r.get(key) is not None]
        return [v for v in out if math.isfinite(v)]

    vals = values(metric)
    k = max(1, round(frac * len(vals)))
    return {"metric": metric, "what": what, "chance": _mean(values("chance")),
            "first": _mean(vals[:k]), "last": _mean(vals[-k:]), "steps": len(vals)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


#: How far above chance (absolute, in accuracy) a run's pretext metric must sit, averaged over
#: the last quarter of its logged steps, for :func:`pretext_learned` to say it learned. A run
#: stuck at the start sits within sampling noise of chance: 50 steps of 16 clips guessed at
#: random (chance 0.10) average 0.10 with a standard deviation of 0.011, so 0.15 is far beyond
#: noise. It is also a bar a run that learned clears with room: the demo's supervised bound
#: measured 0.21-0.26 over its last quarter at lr 2e-3 (marginal, 2 of 3 seeds under it) and
#: 0.34-0.42 at lr 5e-4, its default now (docs/demo.md).
LEARNED_MARGIN = 0.15


def pretext_learned(metrics_path: str, method: str, params: dict[str, Any] | None = None, *,
                    margin: float = LEARNED_MARGIN, frac: float = 0.25) -> dict[str, Any]:
    """Whether a run learned its method's pretext task: :func:`pretext_progress` over the first and
    the last ``frac`` (a quarter) of its ``metrics.jsonl``, plus ``margin`` and ``learned = last >=
    chance + margin``.

    Raises:
        VidsslError: no such file, no records, the method declares no pretext metric, or the
            records lack it (or ``"chance"``).
    """
    from vidssl.methods import method_pretext

    pretext = method_pretext(method, params)
    if pretext is None:
        raise VidsslError(f"method {method!r} declares no pretext metric: its learning is not "
                          f"checked by accuracy")
    if not os.path.exists(metrics_path):
        raise VidsslError(f"no metrics file at {metrics_path}: the run logged no steps")
    recs = read_metrics(metrics_path)
    if not recs:
        raise VidsslError(f"{metrics_path} holds no step records")
    missing = [k for k in (pretext.metric, "chance") if any(k not in r for r in recs)]
    if missing:
        raise VidsslError(f"{metrics_path} lacks {' and '.join(repr(k) for k in missing)} on some "
                          f"steps: not a {method} run's metrics")
    out = {**pretext_progress(recs, method, params, frac=frac), "margin": margin}
    out["learned"] = out["last"] >= out["chance"] + margin
    return out
