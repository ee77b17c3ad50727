"""Where a run is, saved and restored: optimiser steps done, videos skipped, every rank's RNG.

:class:`RunState` owns ``OUT_DIR/checkpoints/last.pt``: :meth:`~RunState.resume` restores the
method, optimiser, scheduler, step, skip count and RNG streams from it; :meth:`~RunState.save`
writes them (on every rank at the same steps; rank 0 writes). The checkpoint layout is
documented in :mod:`vidssl.models.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vidssl.data.dataset import SkipCounter
from vidssl.models.checkpoint import load_checkpoint, save_checkpoint
from vidssl.provenance import provenance
from vidssl.errors import VidsslError
from vidssl.runtime import dist
from vidssl.runtime.sharding import full_state_dicts, is_name_keyed, load_full_state_dicts

log = logging.getLogger("vidssl")

__all__ = ["RunState", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s streams. The states may have been loaded onto a GPU with the
    rest of a checkpoint; torch only accepts them as CPU byte tensors."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@dataclass
class RunState:
    """Step and skip counter of this rank's run, and the checkpoint they are saved to.

    Attributes:
        path: ``OUT_DIR/checkpoints/last.pt``.
        steps_per_epoch: batches per epoch (the epoch and position in it are derived from ``step``).
        total_steps: the steps this run is planned for (``train.epochs`` / ``train.max_steps``).
        step: optimiser steps done. skipped: unreadable videos this rank skipped.
    """

    path: str
    steps_per_epoch: int
    total_steps: int = 0              # the run's planned steps (a resume may change it)
    step: int = 0
    sharded: bool = False             # the method is FSDP-sharded (train.strategy: fsdp)
    skipped: SkipCounter = field(default_factory=SkipCounter)

    def resume(self, resume: str | bool | None, method: nn.Module, optimizer, scheduler, *, seed: int,
               device: torch.device) -> bool:
        """Continue from ``resume``: a checkpoint path, ``True`` for :attr:`path`, ``"auto"`` for
        :attr:`path` if it exists (else a fresh start). Returns whether it resumed."""
        if resume == "auto":
            resume = True if os.path.exists(self.path) else None
            if resume:
                log.info("--resume auto: found %s", self.path)
        if not resume:
            return False
        state = load_checkpoint(self.path if resume is True else resume, map_location=device)
        name_keyed = is_name_keyed(state["optimizer"])
        if self.sharded and state["optimizer"].get("state") and not name_keyed:
            raise VidsslError("this checkpoint was written by a train.strategy=ddp (or single-process) run; "
                              "resume it with that strategy (FSDP reads checkpoints written under FSDP)")
        if self.sharded or name_keyed:
            load_full_state_dicts(method, optimizer, state["model"], state["optimizer"])
        else:
            method.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        saved_total = state.get("total_steps")
        if saved_total and self.total_steps and int(saved_total) != self.total_steps and dist.is_main():
            log.warning("resume: the schedule is rebuilt for %d steps (the checkpoint's run planned %d)",
                        self.total_steps, int(saved_total))
        # the optimiser state holds the lr of the checkpoint's own schedule: set this run's now, so
        # a resume with another train.max_steps uses the rebuilt schedule from its first step
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        if hasattr(scheduler, "apply_weight_decay"):  # this run's weight-decay schedule, not the saved one
            scheduler.apply_weight_decay()
        world, rank = dist.world_size(), dist.rank()
        per_rank = state.get("rng_per_rank") or []
        skips = state.get("skipped_per_rank") or []
        if len(skips) == world:
            self.skipped = SkipCounter.from_state(skips[rank])
        elif dist.is_main():  # older checkpoint or another world size: rank 0 keeps the saved total
            self.skipped = SkipCounter.from_state(state.get("skipped", 0))
        if len(per_rank) == world:
            set_rng_state(per_rank[rank])
        elif world == 1:
            set_rng_state(state["rng"])
        else:  # saved by another number of processes: fresh, distinct streams per rank
            torch.manual_seed(seed + rank + 1_000_003 * self.step)
            log.info("resume: checkpoint saved by %d process(es), now %d: reseeding each rank",
                     max(1, len(per_rank)), world)
        return True

    def save(self, cfg, method: nn.Module, encoder: nn.Module, optimizer, scheduler) -> None:
        """Write the checkpoint (call on every rank at the same steps: the RNG states and skip
        counts of all ranks are gathered; rank 0 writes, the others wait for it)."""
        rngs, skips = zip(*dist.all_gather_object((rng_state(), self.skipped.state())))
        if self.sharded:  # a collective: every rank takes part, rank 0 receives the full tensors
            model_state, optim_state = full_state_dicts(method, optimizer)
            encoder_state = {k[len("encoder."):]: v for k, v in model_state.items() if k.startswith("encoder.")}
        elif dist.is_main():
            model_state, optim_state, encoder_state = method.state_dict(), optimizer.state_dict(), encoder.state_dict()
        if dist.is_main():
            save_checkpoint({
                "model": model_state, "encoder": encoder_state,
                "encoder_spec": {"name": cfg.encoder.name, "kwargs": dict(cfg.encoder.kwargs)},
                "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                "step": self.step, "epoch": self.step // self.steps_per_epoch,
                "batch_in_epoch": self.step % self.steps_per_epoch, "rng": rngs[0],
                "rng_per_rank": list(rngs), "config": dataclasses.asdict(cfg),
                "total_steps": self.total_steps, "provenance": provenance(seed=cfg.train.seed),
                "skipped": sum(k["count"] for k in skips), "skipped_per_rank": list(skips)}, self.path)
        if dist.is_distributed():  # no rank leaves (e.g. after a stop) while rank 0 still writes:
            torch.distributed.barrier()  # torchrun would tear rank 0 down mid-save

    def skipped_everywhere(self) -> SkipCounter:
        """Every rank's skips, summed: what the run as a whole lost (a collective)."""
        total = SkipCounter()
        for part in dist.all_gather_object(self.skipped.state()):
            total.merge(SkipCounter.from_state(part))
        return total
