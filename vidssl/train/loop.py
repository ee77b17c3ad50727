"""``pretrain(config)``: the self-supervised training loop of one run, readable in one sitting.

Schedules are computed up front per step; a non-finite loss aborts with the step and the loss
terms; checkpoints hold everything needed to continue exactly (model, optimizer, scheduler,
step, RNG, position in the epoch, resolved config: :class:`~vidssl.train.state.RunState`). The
same code runs in one process or under ``torchrun`` (DDP; the method gathers negatives across
ranks itself). Multi-stage configs go through :func:`vidssl.train.run.run`, the one door into
training, which calls :func:`pretrain` once per stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from vidssl.config import to_yaml
from vidssl.data.dataset import ClipDataset, SkipCounter, batch_to_device, build_loader, set_loader_epoch
from vidssl.data.decoders import decoder_device
from vidssl.data.device_loader import DeviceLoader
from vidssl.data.transforms import clip_transform
from vidssl.errors import ConfigError, VidsslError
from vidssl.methods import create_method, method_stages
from vidssl.models.encoders import create_encoder
from vidssl.provenance import provenance
from vidssl.runtime import dist
from vidssl.runtime.device import autocast, autocast_dtype, resolve_device
from vidssl.runtime.optim import build_optimizer, check_finite, optimizer_step, schedule_from_config
from vidssl.runtime.rundir import claim_run_dir, remove_run_outputs
from vidssl.runtime.sharding import STRATEGIES, enable_activation_checkpointing, shard_model
from vidssl.train.components import (apply_step_options, build_training_index, index_arguments,
                                     resolve_decoder)
from vidssl.train.config import PretrainConfig
from vidssl.train.pictures import write_method_pictures
from vidssl.train.monitor import RunMonitor
from vidssl.train.signals import StopRequest
from vidssl.train.state import RunState

log = logging.getLogger("vidssl")

__all__ = ["PretrainResult", "pretrain", "train_step", "build_components"]


@dataclass
class PretrainResult:
    out_dir: str
    checkpoint: str
    steps: int
    losses: list[float] = field(default_factory=list)   # this process's run only
    clips_per_s: float = float("nan")
    data_wait: float = float("nan")                     # fraction of step time spent waiting
    skipped: SkipCounter = field(default_factory=SkipCounter)
    stopped_by: str | None = None                       # "SIGTERM" / "SIGINT" when asked to stop
    start_step: int = 0                                 # where this process began (resume)
    total: int = 0                                      # the run's planned optimizer steps
    updates: int = 0                                    # steps of this process that updated weights
    last_update_loss: float = float("nan")              # loss of the last step that updated them
    stages: list["PretrainResult"] = field(default_factory=list)   # per stage (multi-stage runs)
    name: str = ""                                      # the stage's name (multi-stage runs)
    pictures: list[str] = field(default_factory=list)   # PNGs the method drew of held clips (VideoMAE)


def train_step(model: nn.Module, method: nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scheduler, *, clip_grad: float | None, amp_dtype: torch.dtype | None, step: int,
               total: int) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch already on the device (``model`` may be the DDP wrapper of
    ``method``). Raises :class:`NonFiniteLossError` before touching the weights."""
    if hasattr(method, "set_step"):  # schedule-dependent behaviour (DPC's curriculum)
        method.set_step(step, total)
    with autocast(batch["views"][0].device, amp_dtype):
        out = model(batch)
    check_finite(out, step, "lower optim.lr or set optim.clip_grad")
    # a true "skip_update" (CoCLR while its queue fills): no optimiser step, so no scheduler
    # step either (the schedule counts updates)
    if not ("skip_update" in out and bool(out["skip_update"])):
        optimizer_step(out["loss"], method.parameters(), optimizer, scheduler, clip_grad)
    if hasattr(method, "after_step"):
        method.after_step(step, total)
    return out


def build_components(cfg: PretrainConfig, device: torch.device):
    """``(encoder, method on device, loader)`` for a config (per-rank batch under DDP)."""
    data = cfg.data
    encoder = create_encoder(cfg.encoder.name, pretrained=cfg.encoder.pretrained, **cfg.encoder.kwargs)
    method = create_method(cfg.method.name, encoder, cfg.method.params).to(device)
    apply_step_options(encoder, cfg.train)
    if cfg.train.activation_checkpointing:
        enable_activation_checkpointing(method, what=f"method {cfg.method.name!r} with encoder {cfg.encoder.name!r}")
    index = build_training_index(data)

    def make_dataset(decoder: str) -> ClipDataset:
        return ClipDataset(index, method.sampler, decoder=decoder, seed=cfg.train.seed,
                           transform=clip_transform(data.resize, data.crop),
                           paired=(data.root, data.paired_root) if data.paired_root else None,
                           decode_timeout_s=data.decode_timeout_s,
                           max_frame_pixels=data.max_frame_pixels,
                           fallback_decoder=data.fallback_decoder or (
                               "torchcodec" if decoder_device(decoder) == "cuda" else None))

    decoder = resolve_decoder(data.decoder, make_dataset, device, data.num_workers)
    dataset = make_dataset(decoder)
    per_rank = data.batch_size // dist.world_size()
    kind = data.loader if data.loader != "auto" else (
        "device" if decoder_device(decoder) == "cuda" else "workers")
    if kind == "device":
        loader = DeviceLoader(dataset, per_rank, device, seed=cfg.train.seed,
                              drop_last=data.drop_last)
    elif kind == "workers":
        loader = build_loader(dataset, per_rank, num_workers=data.num_workers,
                              seed=cfg.train.seed, drop_last=data.drop_last,
                              pin_memory=device.type == "cuda")
    else:
        raise ConfigError(f"data.loader must be auto, workers or device, not {data.loader!r}")
    return encoder, method, loader


def write_run_files(cfg: PretrainConfig, start_step: int) -> None:
    """``config.yaml`` (the resolved config) and ``run.json`` (one provenance record per session
    of the run: versions, commit, command line, seed, the step it started from)."""
    out = cfg.train.out_dir
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(to_yaml(cfg))
    path = os.path.join(out, "run.json")
    sessions = []
    if os.path.exists(path):
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding="utf-8") as f:
                sessions = json.load(f).get("sessions", [])
    sessions.append(provenance(start_step=start_step, seed=cfg.train.seed))
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"run": os.path.basename(os.path.normpath(out)), "sessions": sessions}, f, indent=2)


def setup_process(cfg: PretrainConfig) -> torch.device:
    """Device, process group (under torchrun), seeds and determinism for this rank."""
    t = cfg.train
    if t.strategy not in STRATEGIES:
        raise ConfigError(f"train.strategy must be one of {', '.join(STRATEGIES)}, got {t.strategy!r}")
    device = resolve_device(t.device, key="train.device")
    dist.init_distributed(device)
    if device.type == "cuda" and dist.is_distributed():
        device = torch.device("cuda", torch.cuda.current_device())
    if cfg.data.batch_size % dist.world_size():
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} is not divisible by the "
                          f"{dist.world_size()} processes")
    torch.manual_seed(t.seed + dist.rank())
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return device


def pretrain(cfg: PretrainConfig, resume: str | bool | None = None) -> PretrainResult:
    """Train ``cfg.method`` on ``cfg.data`` (one run); ``resume`` = a checkpoint path, True for
    the run's ``checkpoints/last.pt``, or ``"auto"``: that file if it exists, else a fresh start
    (what a job restarted by ``torchrun --max-restarts`` or a scheduler wants). Returns where
    things were written and what was measured."""
    stages = method_stages(cfg.method.name, cfg.method.params)
    if stages:
        raise ConfigError(f"method {cfg.method.name!r} with these parameters runs as {len(stages)} stages: "
                          f"train it with vidssl.train.run.run (what `vidssl pretrain` does)")
    index_arguments(cfg.data)  # a bad data section fails now, before anything is built
    device = setup_process(cfg)
    t = cfg.train
    with claim_run_dir(t.out_dir, resume=bool(resume), if_exists=t.if_exists, what="training run") as out:
        if out != t.out_dir:  # versioned: never into another run's folder
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(t, out_dir=out))
        return _pretrain(cfg, resume, device)


def _pretrain(cfg: PretrainConfig, resume: str | bool | None, device: torch.device) -> PretrainResult:
    t = cfg.train
    world, is_main = dist.world_size(), dist.is_main()
    encoder, method, loader = build_components(cfg, device)
    index = loader.dataset.index
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise VidsslError(f"{index.name}: {len(index)} videos make no full batch of {cfg.data.batch_size}")
    total = min(t.epochs * steps_per_epoch, t.max_steps or math.inf)
    if cfg.optim.warmup_steps >= total and is_main:
        log.warning("optim.warmup_steps=%d is not below this run's %d steps: the warm-up is cut to %d "
                    "steps and the cosine decay has one step", cfg.optim.warmup_steps, total, total - 1)

    sharded = t.strategy == "fsdp" and dist.is_distributed()
    if sharded:  # before the optimiser: the parameters become DTensors
        shard_model(method, device)
    optimizer = build_optimizer(method, cfg.optim, device)
    scheduler = schedule_from_config(optimizer, cfg.optim, total)
    state = RunState(os.path.join(t.out_dir, "checkpoints", "last.pt"), steps_per_epoch, total, sharded=sharded)
    if resume == "auto" and not os.path.exists(state.path) and is_main:
        remove_run_outputs(t.out_dir)  # an attempt of this job killed before its first checkpoint
    if state.resume(resume, method, optimizer, scheduler, seed=t.seed, device=device):
        log.info("resumed from step %d of %d", state.step, total)
    model = nn.parallel.DistributedDataParallel(method) if dist.is_distributed() and not sharded else method
    amp_dtype = autocast_dtype(t.amp, device, key="train.amp")
    if is_main:
        write_run_files(cfg, state.step)
    monitor = RunMonitor(t.out_dir, total, enabled=is_main, progress=t.progress,
                         tensorboard=t.tensorboard, log_every=t.log_every, start_step=state.step,
                         config=dataclasses.asdict(cfg), wandb=t.wandb)
    result = PretrainResult(t.out_dir, state.path, state.step, skipped=state.skipped,
                            start_step=state.step, total=total)
    waits, busy, clips = 0.0, 0.0, 0
    model.train()
    if t.freeze_bn:  # batch-size-independent forward: tiny per-process batches, exact DDP checks
        for m in method.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    stop, stopping = StopRequest(), False
    try:
        while state.step < total:
            set_loader_epoch(loader, state.step // steps_per_epoch,
                             start_batch=state.step % steps_per_epoch)
            t_wait = time.perf_counter()
            for batch in loader:
                t_ready = time.perf_counter()
                state.skipped.update(batch)
                lr = max(g["lr"] for g in optimizer.param_groups)  # layer decay: the top group's
                wd = scheduler.weight_decay(state.step)
                out = train_step(model, method, batch_to_device(batch, device), optimizer, scheduler,
                                 clip_grad=cfg.optim.clip_grad, amp_dtype=amp_dtype,
                                 step=state.step, total=total)
                state.step += 1
                t_done = time.perf_counter()
                n = batch["views"][0].shape[0] * world
                waits += t_ready - t_wait
                busy += t_done - t_wait
                clips += n
                scalars = {k: float(dist.all_reduce_mean(v.detach().float()))
                           for k, v in out.items() if v.numel() == 1}
                scalars.update(lr=lr, clips_per_s=n / (t_done - t_wait),
                               data_wait=(t_ready - t_wait) / (t_done - t_wait))
                if wd is not None:
                    scalars["weight_decay"] = wd
                result.losses.append(scalars["loss"])
                if not bool(out.get("skip_update", False)):
                    result.updates += 1
                    result.last_update_loss = scalars["loss"]
                monitor.step(state.step, scalars)
                stopping = stop.requested()
                if (t.ckpt_every and state.step % t.ckpt_every == 0) or state.step == total \
                        or state.step % steps_per_epoch == 0 or stopping:
                    state.save(cfg, method, encoder, optimizer, scheduler)
                if state.step >= total or stopping:
                    break
                t_wait = time.perf_counter()
            if stopping:
                result.stopped_by = stop.name or "a signal on another rank"
                log.warning("pretrain: stopped at step %d of %d by %s; checkpoint %s (continue with "
                            "--resume)", state.step, total, result.stopped_by, state.path)
                break
    finally:
        stop.close()
        monitor.close()
    result.steps = state.step
    if result.stopped_by is None and state.step >= total:
        result.pictures = write_method_pictures(method, loader.dataset, t.out_dir, device, write=is_main)
    result.clips_per_s = clips / busy if busy else math.nan
    result.data_wait = waits / busy if busy else math.nan
    result.skipped = state.skipped_everywhere()
    result.skipped.index_dropped = SkipCounter.for_index(index).index_dropped  # apart from these
    if result.skipped.nonempty() and is_main:
        log.warning("pretrain: %s", result.skipped.summary())
    return result
