"""``pretrain(config)``: the self-supervised training loop, readable in one sitting.

Schedules are computed up front per step; a non-finite loss aborts with the step and the loss
terms; checkpoints hold everything needed to continue exactly (model, optimizer, scheduler,
step, RNG, position in the epoch, resolved config). The same code runs in one process or under
``torchrun`` (DDP; the method gathers negatives across ranks itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from vidssl.data.dataset import (ClipDataset, SkipCounter, batch_to_device as to_device,  # noqa: F401
                                 build_loader, set_loader_epoch)
from vidssl.data.decoders import decoder_device
from vidssl.data.device_loader import DeviceLoader
from vidssl.errors import ConfigError, VidsslError
from vidssl.train import dist
from vidssl.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vidssl.train.config import PretrainConfig
from vidssl.train.monitor import RunMonitor
from vidssl.train.schedules import build_scheduler

log = logging.getLogger("vidssl")


class NonFiniteLossError(VidsslError):
    """The loss became NaN or infinite; training stopped before corrupting the weights."""


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


class StopRequest:
    """SIGTERM / SIGINT handlers that ask the loop to stop after the current step (it then
    checkpoints and returns) instead of dying mid-step. Installed only in the main thread;
    the previous handlers come back on ``close``. A second signal of either kind while
    stopping falls through to the previous handler for that signal (e.g. Ctrl-C twice kills).
    A rank stopped because another rank was signalled reports "a signal on another rank" (the
    CLI exits 130 there; the signalled rank exits 128 + its signal)."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.name: str | None = None
        self._previous: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            num = getattr(signal, name)
            self._previous[num] = signal.signal(num, self._handle)

    def _handle(self, num: int, frame) -> None:
        name = signal.Signals(num).name
        if self.name is not None:  # asked twice: behave as before we were installed
            previous = self._previous.get(num)
            if callable(previous):
                previous(num, frame)
            raise KeyboardInterrupt
        self.name = name
        log.warning("%s received: stopping after this step (checkpoint, then exit)", name)

    def requested(self) -> bool:
        """Whether any rank was asked to stop (all ranks agree, so none waits in a collective)."""
        flag = torch.tensor([1.0 if self.name else 0.0])
        if dist.is_distributed():
            flag = dist.all_reduce_mean(flag.to(dist_device()))
        return bool(flag.item() > 0)

    def close(self) -> None:
        for num, previous in self._previous.items():
            signal.signal(num, previous)
        self._previous.clear()


def dist_device() -> torch.device:
    """The device collectives of this process run on (nccl needs CUDA tensors)."""
    import torch.distributed as tdist

    if tdist.is_initialized() and tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available")
    return device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 where it is supported and asked for; ``auto`` means CUDA with bf16 only (CPU bf16
    autocast is slow on most CPUs and changes numerics for no gain there)."""
    if amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"train.amp must be auto, bf16 or off, got {amp!r}")
    if amp == "off":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.bfloat16 if amp == "bf16" else None


def build_optimizer(model: nn.Module, cfg, device: torch.device | None = None) -> torch.optim.Optimizer:
    """AdamW or SGD; no weight decay on biases and normalisation weights (1-D parameters);
    fused kernels when ``cfg.fused`` (``None``: on CUDA devices)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = cfg.fused if cfg.fused is not None else (device is not None and device.type == "cuda")
    extra = {"fused": True} if fused else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False, **extra)
    raise ConfigError(f"optim.name must be adamw or sgd, got {cfg.name!r}")


def build_training_index(data):
    from vidssl.data.index import build_index

    kw = {"progress": False}
    if data.dataset in ("synthetic", "ucf101", "hmdb51"):
        kw.update(split=data.split, subset=data.subset)
    if not os.path.exists(data.root):
        hint = " (run `vidssl make-synthetic` first)" if data.dataset == "synthetic" else ""
        raise VidsslError(f"data.root {data.root} does not exist{hint}")
    return build_index(data.dataset, data.root, **kw)


def train_step(model: nn.Module, method: nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scheduler, *, clip_grad: float | None, amp_dtype: torch.dtype | None, step: int,
               total: int) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch already on the device (``model`` may be the DDP wrapper of
    ``method``). Raises :class:`NonFiniteLossError` before touching the weights."""
    device_type = batch["views"][0].device.type
    if hasattr(method, "set_step"):  # schedule-dependent behaviour (DPC's curriculum)
        method.set_step(step, total)
    with torch.autocast(device_type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
        out = model(batch)
    loss = out["loss"]
    if not torch.isfinite(loss.detach()).all():
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.items() if v.numel() == 1)
        raise NonFiniteLossError(f"non-finite loss at step {step + 1} ({terms}); "
                                 "lower optim.lr or set optim.clip_grad")
    if "skip_update" in out and bool(out["skip_update"]):  # e.g. CoCLR while its queue fills
        # no optimiser step, so no scheduler step either: the schedule counts updates
        if hasattr(method, "after_step"):
            method.after_step(step, total)
        return out
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad:
        nn.utils.clip_grad_norm_(method.parameters(), clip_grad)
    optimizer.step()
    scheduler.step()
    if hasattr(method, "after_step"):
        method.after_step(step, total)
    return out


def resolve_decoder(name: str, make_dataset, device: torch.device, num_workers: int) -> str:
    """``data.decoder``, with ``auto`` measured on the run's first clips (rank 0's choice is
    broadcast, so every rank decodes alike)."""
    if name != "auto":
        return name
    from vidssl.data.decoders.calibrate import choose_decoder

    choice: list = [None]
    if dist.is_main():
        try:
            choice = [choose_decoder(make_dataset, device=device.type, num_workers=num_workers).decoder]
        except VidsslError as err:  # sent to the other ranks too, instead of leaving them waiting
            choice = [err]
    if dist.is_distributed():
        torch.distributed.broadcast_object_list(choice, src=0)
    if isinstance(choice[0], BaseException):
        raise VidsslError(str(choice[0]))
    return choice[0]


ENCODER_ENTRY_POINTS = ("forward", "forward_features", "forward_feature_map")


def apply_step_options(encoder: nn.Module, t) -> None:
    """``train.channels_last`` (weights and 5-D inputs in channels_last_3d) and ``train.compile``
    (``torch.compile``) on the encoder's entry points; methods call ``forward_features`` /
    ``forward_feature_map`` directly, so those are wrapped, not ``__call__``. Weights and
    state-dict keys are unchanged."""
    if t.channels_last:
        encoder.to(memory_format=torch.channels_last_3d)
    for name in ENCODER_ENTRY_POINTS:
        fn = getattr(encoder, name, None)
        if fn is None:
            continue
        if t.channels_last:
            fn = _channels_last(fn)
        if t.compile:
            fn = torch.compile(fn)
        if t.channels_last or t.compile:
            setattr(encoder, name, fn)


def _channels_last(fn):
    def wrapped(x, *args, **kwargs):
        if isinstance(x, torch.Tensor) and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return fn(x, *args, **kwargs)

    return wrapped


def build_components(cfg: PretrainConfig, device: torch.device):
    """``(encoder, method on device, loader)`` for a config (per-rank batch under DDP)."""
    from vidssl.data.transforms import clip_transform
    from vidssl.methods import create_method
    from vidssl.models.encoders import create_encoder

    data = cfg.data
    encoder = create_encoder(cfg.encoder.name, pretrained=cfg.encoder.pretrained, **cfg.encoder.kwargs)
    method = create_method(cfg.method.name, encoder, cfg.method.params).to(device)
    apply_step_options(encoder, cfg.train)
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


def pretrain(cfg: PretrainConfig, resume: str | bool | None = None) -> PretrainResult:
    """Train ``cfg.method`` on ``cfg.data``; ``resume`` = a checkpoint path, True for the run's
    ``checkpoints/last.pt``, or ``"auto"``: that file if it exists, else a fresh start (what a
    job restarted by ``torchrun --max-restarts`` or a scheduler wants). Returns where things were
    written and what was measured.

    A config whose method expands into stages (CoCLR's ``schedule``) runs them in order
    (:mod:`vidssl.train.stages`); ``resume`` then skips finished stages."""
    from vidssl.train.stages import config_stages, run_stages

    stages = config_stages(cfg)
    if stages:
        return run_stages(stages, resume)
    t, data = cfg.train, cfg.data
    device = resolve_device(t.device)
    dist.init_distributed(device)
    if device.type == "cuda" and dist.is_distributed():
        device = torch.device("cuda", torch.cuda.current_device())
    world, is_main = dist.world_size(), dist.is_main()
    if data.batch_size % world:
        raise ConfigError(f"data.batch_size={data.batch_size} is not divisible by the "
                          f"{world} processes")
    torch.manual_seed(t.seed + dist.rank())
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False

    encoder, method, loader = build_components(cfg, device)
    index = loader.dataset.index
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise VidsslError(f"{index.name}: {len(index)} videos make no full batch of {data.batch_size}")
    total = t.epochs * steps_per_epoch
    total = min(total, t.max_steps) if t.max_steps else total

    optimizer = build_optimizer(method, cfg.optim, device)
    scheduler = build_scheduler(optimizer, total, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio)
    ckpt_path = os.path.join(t.out_dir, "checkpoints", "last.pt")
    step, skipped = 0, SkipCounter.for_index(index)
    if resume == "auto":
        resume = True if os.path.exists(ckpt_path) else None
        if resume:
            log.info("--resume auto: found %s", ckpt_path)
    if resume:
        state = load_checkpoint(ckpt_path if resume is True else resume, map_location=device)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        per_rank = state.get("rng_per_rank") or []
        skips = state.get("skipped_per_rank") or []
        if len(skips) == world:
            skipped = SkipCounter.from_state(skips[dist.rank()])
        elif is_main:  # older checkpoint or another world size: rank 0 keeps the saved total
            skipped = SkipCounter.from_state(state.get("skipped", 0))
        if len(per_rank) == world:
            set_rng_state(per_rank[dist.rank()])
        elif world == 1:
            set_rng_state(state["rng"])
        else:  # saved by another number of processes: fresh, distinct streams per rank
            torch.manual_seed(t.seed + dist.rank() + 1_000_003 * step)
            log.info("resume: checkpoint saved by %d process(es), now %d: reseeding each rank",
                     max(1, len(per_rank)), world)
        log.info("resumed from step %d of %d", step, total)
    model = nn.parallel.DistributedDataParallel(method) if dist.is_distributed() else method
    amp_dtype = autocast_dtype(t.amp, device)
    config_dict = dataclasses.asdict(cfg)

    def checkpoint() -> None:  # called on every rank at the same steps
        rngs, skips = zip(*dist.all_gather_object((rng_state(), skipped.state())))
        total_skipped = sum(k["count"] for k in skips)
        if is_main:
            save_checkpoint({
                "model": method.state_dict(), "encoder": encoder.state_dict(),
                "encoder_spec": {"name": cfg.encoder.name, "kwargs": dict(cfg.encoder.kwargs)},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step, "epoch": step // steps_per_epoch,
                "batch_in_epoch": step % steps_per_epoch, "rng": rngs[0], "rng_per_rank": list(rngs),
                "config": config_dict, "skipped": total_skipped,
                "skipped_per_rank": list(skips)}, ckpt_path)
        if dist.is_distributed():  # no rank leaves (e.g. after a stop) while rank 0 still writes:
            torch.distributed.barrier()  # torchrun would tear rank 0 down mid-save

    if is_main:
        os.makedirs(t.out_dir, exist_ok=True)
        from vidssl.config import to_yaml
        with open(os.path.join(t.out_dir, "config.yaml"), "w", encoding="utf-8") as f:
            f.write(to_yaml(cfg))
    monitor = RunMonitor(t.out_dir, total, enabled=is_main, progress=t.progress,
                         tensorboard=t.tensorboard, log_every=t.log_every, start_step=step)
    result = PretrainResult(t.out_dir, ckpt_path, step, skipped=skipped)
    waits, busy, clips = 0.0, 0.0, 0
    model.train()
    if t.freeze_bn:  # batch-size-independent forward: tiny per-process batches, exact DDP checks
        for m in method.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    stop, stopping = StopRequest(), False
    try:
        while step < total:
            epoch = step // steps_per_epoch
            set_loader_epoch(loader, epoch, start_batch=step % steps_per_epoch)
            t_wait = time.perf_counter()
            for batch in loader:
                t_ready = time.perf_counter()
                skipped.update(batch)
                lr = optimizer.param_groups[0]["lr"]
                out = train_step(model, method, to_device(batch, device), optimizer, scheduler,
                                 clip_grad=cfg.optim.clip_grad, amp_dtype=amp_dtype,
                                 step=step, total=total)
                step += 1
                t_done = time.perf_counter()
                n = batch["views"][0].shape[0] * world
                waits += t_ready - t_wait
                busy += t_done - t_wait
                clips += n
                scalars = {k: float(dist.all_reduce_mean(v.detach().float()))
                           for k, v in out.items() if v.numel() == 1}
                scalars.update(lr=lr, clips_per_s=n / (t_done - t_wait),
                               data_wait=(t_ready - t_wait) / (t_done - t_wait))
                result.losses.append(scalars["loss"])
                monitor.step(step, scalars)
                stopping = stop.requested()
                if (t.ckpt_every and step % t.ckpt_every == 0) or step == total \
                        or step % steps_per_epoch == 0 or stopping:
                    checkpoint()
                if step >= total or stopping:
                    break
                t_wait = time.perf_counter()
            if stopping:
                result.stopped_by = stop.name or "a signal on another rank"
                log.warning("pretrain: stopped at step %d of %d by %s; checkpoint %s (continue with "
                            "--resume)", step, total, result.stopped_by, ckpt_path)
                break
    finally:
        stop.close()
        monitor.close()
    result.steps = step
    result.clips_per_s = clips / busy if busy else math.nan
    result.data_wait = waits / busy if busy else math.nan
    everywhere = SkipCounter.for_index(index)  # every rank's skips, summed: what the run lost
    for part in dist.all_gather_object(skipped.state()):
        everywhere.merge(SkipCounter.from_state(part))
    result.skipped = everywhere
    if everywhere.nonempty() and is_main:
        log.warning("pretrain: %s", everywhere.summary())
    return result
