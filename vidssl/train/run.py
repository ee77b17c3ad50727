"""``run(cfg, resume)``: the one door into training.

A config runs as one :func:`~vidssl.train.loop.pretrain`, or, when its method describes stages
(:func:`vidssl.methods.method_stages`: CoCLR's InfoNCE -> co-training alternation), as one run
per stage, in order: :func:`config_stages` expands the method's plain-data stages into configs,
each writing to ``OUT_DIR/<stage name>`` with the config's ``train`` budget. A finished stage
leaves ``stage_done.json`` in its folder, so ``resume`` skips finished stages and resumes the
interrupted one from its ``last.pt``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import torch

from vidssl.methods import method_stages
from vidssl.runtime import dist
from vidssl.train.config import MethodConfig, PretrainConfig
from vidssl.runtime.rundir import claim_run_dir
from vidssl.train.loop import PretrainResult, pretrain, setup_process

log = logging.getLogger("vidssl")

__all__ = ["run", "config_stages", "run_stages"]


def config_stages(cfg: PretrainConfig) -> list[tuple[str, PretrainConfig]]:
    """``[(stage name, config)]`` of a multi-stage config (empty for a single run): each stage's
    method parameters over the config's, checkpoint parameters pointing at earlier stages'
    ``checkpoints/last.pt``, ``train.out_dir`` = ``OUT_DIR/<stage name>``."""
    out = []
    for stage in method_stages(cfg.method.name, cfg.method.params):
        ckpts = {k: os.path.join(cfg.train.out_dir, ref, "checkpoints", "last.pt")
                 for k, ref in stage.checkpoints.items()}
        params = {**dict(cfg.method.params), **stage.params, **ckpts}
        out.append((stage.name, dataclasses.replace(
            cfg, method=MethodConfig(cfg.method.name, params),
            train=dataclasses.replace(cfg.train, out_dir=os.path.join(cfg.train.out_dir, stage.name)))))
    return out


def run(cfg: PretrainConfig, resume: str | bool | None = None) -> PretrainResult:
    """Train ``cfg`` (all its stages); ``resume`` as for :func:`~vidssl.train.loop.pretrain`
    (``True``/``"auto"``/a path). Returns the (last stage's) :class:`PretrainResult`, whose
    ``stages`` lists every stage's own result. The run's folder is claimed once for all stages
    (:func:`~vidssl.runtime.rundir.claim_run_dir`: never another run's folder, locked)."""
    if not method_stages(cfg.method.name, cfg.method.params):
        return pretrain(cfg, resume=resume)
    setup_process(cfg)
    t = cfg.train
    with claim_run_dir(t.out_dir, resume=bool(resume), if_exists=t.if_exists, what="training run") as out:
        if out != t.out_dir:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(t, out_dir=out))
        return run_stages(config_stages(cfg), resume)


def run_stages(stages: list[tuple[str, PretrainConfig]], resume: bool | str | None = None) -> PretrainResult:
    """Run each ``(name, cfg)``; returns the last stage's :class:`PretrainResult` with every
    stage's result in ``stages`` (a stage finished earlier: its recorded steps, updates, loss)."""
    done_stages: list[PretrainResult] = []
    for i, (name, cfg) in enumerate(stages):
        done = os.path.join(cfg.train.out_dir, "stage_done.json")
        last = os.path.join(cfg.train.out_dir, "checkpoints", "last.pt")
        if resume and os.path.exists(done):
            if dist.is_main():
                log.info("stage %d/%d %s: finished earlier, skipped", i + 1, len(stages), name)
            with open(done, encoding="utf-8") as f:
                rec = json.load(f)
            done_stages.append(PretrainResult(
                cfg.train.out_dir, last, rec["steps"], start_step=rec["steps"], total=rec["steps"],
                updates=rec.get("updates", 0), last_update_loss=rec.get("last_update_loss", float("nan")),
                name=name))
            continue
        if dist.is_main():  # one line per stage, not one per rank
            log.info("stage %d/%d %s -> %s", i + 1, len(stages), name, cfg.train.out_dir)
        result = pretrain(cfg, resume=True if resume and os.path.exists(last) else None)
        result.name = name
        done_stages.append(result)
        if result.stopped_by:  # SIGTERM / SIGINT: not finished, the next --resume continues it
            break
        if dist.is_main():
            with open(done, "w", encoding="utf-8") as f:
                json.dump({"stage": name, "steps": result.steps, "checkpoint": result.checkpoint,
                           "updates": result.updates, "last_update_loss": result.last_update_loss}, f)
        if dist.is_distributed():  # the next stage reads this stage's checkpoint
            torch.distributed.barrier()
    result = dataclasses.replace(done_stages[-1], stages=done_stages)
    return result
