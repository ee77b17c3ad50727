"""Multi-stage pretraining: one config that expands into several ``pretrain`` runs.

A method class may define ``stage_configs(cfg) -> [(name, PretrainConfig)]`` (CoCLR's
InfoNCE -> co-training alternation). :func:`run_stages` runs them in order; each finished stage
leaves ``stage_done.json`` in its folder, so ``--resume`` skips finished stages and resumes the
interrupted one from its ``last.pt``.
"""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger("vidssl")

__all__ = ["config_stages", "run_stages"]


def config_stages(cfg) -> list:
    """The stages ``cfg`` expands into (empty for a single-stage run)."""
    from vidssl.methods import method_class

    fn = getattr(method_class(cfg.method.name), "stage_configs", None)
    return fn(cfg) if fn is not None else []


def run_stages(stages: list, resume: bool | str | None = None):
    """Run each ``(name, cfg)``; returns the last stage's :class:`PretrainResult`."""
    from vidssl.train import dist
    from vidssl.train.loop import pretrain

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
            import torch.distributed

            torch.distributed.barrier()
    if result is None:  # everything was done already
        from vidssl.train.loop import PretrainResult

        _, cfg = stages[-1]
        with open(os.path.join(cfg.train.out_dir, "stage_done.json"), encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        result = PretrainResult(cfg.train.out_dir, os.path.join(cfg.train.out_dir, "checkpoints", "last.pt"), steps)
    return result
