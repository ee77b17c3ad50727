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
from vidssl.train.loop import PretrainResult, pretrain

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
    (``True``/``"auto"``/a path). Returns the (last stage's) :class:`PretrainResult`."""
    stages = config_stages(cfg)
    return run_stages(stages, resume) if stages else pretrain(cfg, resume=resume)


def run_stages(stages: list[tuple[str, PretrainConfig]], resume: bool | str | None = None) -> PretrainResult:
    """Run each ``(name, cfg)``; returns the last stage's :class:`PretrainResult`."""
    result = None
    for i, (name, cfg) in enumerate(stages):
        done = os.path.join(cfg.train.out_dir, "stage_done.json")
        last = os.path.join(cfg.train.out_dir, "checkpoints", "last.pt")
        if resume and os.path.exists(done):
            log.info("stage %d/%d %s: finished earlier, skipped", i + 1, len(stages), name)
            continue
        log.info("stage %d/%d %s -> %s", i + 1, len(stages), name, cfg.train.out_dir)
        result = pretrain(cfg, resume=True if resume and os.path.exists(last) else None)
        if result.stopped_by:  # SIGTERM / SIGINT: not finished, the next --resume continues it
            return result
        if dist.is_main():
            with open(done, "w", encoding="utf-8") as f:
                json.dump({"stage": name, "steps": result.steps, "checkpoint": result.checkpoint}, f)
        if dist.is_distributed():  # the next stage reads this stage's checkpoint
            torch.distributed.barrier()
    if result is None:  # everything was done already
        _, cfg = stages[-1]
        with open(os.path.join(cfg.train.out_dir, "stage_done.json"), encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        result = PretrainResult(cfg.train.out_dir, os.path.join(cfg.train.out_dir, "checkpoints", "last.pt"), steps)
    return result
