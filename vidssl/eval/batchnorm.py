"""BatchNorm statistics for frozen evaluation: ``keep`` the encoder's, or ``recompute`` them.

A frozen encoder evaluated in eval mode normalises with whatever running statistics it carries:
the pretraining data's (or, for random init, ``mean 0 / var 1``, which matches nothing). With
``recompute`` ("precise BN": Wu & Johnson 2021; fvcore's ``update_bn_stats``, pycls'
``compute_precise_bn_stats``), the statistics are re-estimated on the evaluation's **own
training clips**, without gradients, on a **copy** of the encoder (the caller's weights are
never modified):

- every BatchNorm layer is put in train mode (so each layer normalises with its batch
  statistics during the pass, as in fvcore / pycls) and a forward pre-hook records, per batch,
  the per-channel mean and mean square of the layer's input;
- over ``num_batches`` batches of ``batch_size`` clips, the running mean becomes the
  element-weighted mean of the batch means and the running variance the pooled variance
  ``E[x^2] - E[x]^2`` (pycls' estimate: the variance of all the clips together, independent of
  how they were batched; fvcore averages per-batch variances instead, which is lower when the
  batches are homogeneous, e.g. several clips of one video);
- the copy is returned in eval mode. Encoders without BatchNorm (ViTs: LayerNorm) are returned
  unchanged and the mode is recorded as having no effect.

The clips are the evaluation's feature views (evenly spaced clips, centre crop) of the train
videos of the split being evaluated, in a seeded random order.
"""

from __future__ import annotations

import copy
import logging
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vidssl.data.index.core import VideoIndex
from vidssl.data.transforms import Compose, Normalize, ToModelLayout
from vidssl.errors import ConfigError, VidsslError
from vidssl.runtime.device import autocast, autocast_dtype, resolve_device

log = logging.getLogger("vidssl.eval")

#: ``keep``: the encoder's own running statistics; ``recompute``: precise BN on the
#: evaluation's train clips. (Trained presets also know ``train``: BN layers in train mode
#: while the probe trains, as TCLR's released linear evaluation does.)
BN_MODES = ("keep", "recompute")

__all__ = ["BN_MODES", "batchnorm_layers", "recompute_batchnorm", "train_clip_batches", "check_bn_mode"]


def check_bn_mode(mode: str, allowed: tuple[str, ...] = BN_MODES, key: str = "bn.mode") -> str:
    if mode not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {mode!r}")
    return mode


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers (1d / 2d / 3d, SyncBatchNorm) of ``module`` that track statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _forward(model: nn.Module):
    return getattr(model, "forward_features", None) or model


def recompute_batchnorm(encoder: nn.Module, batches: Iterable[torch.Tensor], *, num_batches: int,
                        device: torch.device | str | None = None, amp: bool = True) -> tuple[nn.Module, int]:
    """A copy of ``encoder`` whose BatchNorm statistics are re-estimated on ``batches``.

    Args:
        encoder: left untouched (weights, buffers and train/eval mode).
        batches: float ``(n, 3, T, H, W)`` clips, already normalised for the encoder.
        num_batches: at most this many batches are used.

    Returns:
        ``(copy in eval mode, number of batches used)``; with no BatchNorm layer, ``(encoder, 0)``.
    """
    if not batchnorm_layers(encoder):
        return encoder, 0
    dev = resolve_device(device)
    model = copy.deepcopy(encoder).to(dev)
    layers = batchnorm_layers(model)
    sums = {id(m): [torch.zeros(m.num_features, dtype=torch.float64, device=dev),
                    torch.zeros(m.num_features, dtype=torch.float64, device=dev), 0] for m in layers}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach()
        dims = [0] + list(range(2, x.dim()))
        n = x.numel() // x.shape[1]
        acc = sums[id(module)]
        acc[0] += x.double().sum(dims)
        acc[1] += x.double().pow(2).sum(dims)
        acc[2] += n

    model.eval()
    for m in layers:
        m.train()
    handles = [m.register_forward_pre_hook(record) for m in layers]
    amp_dtype = autocast_dtype("auto" if amp else "off", dev)
    used = 0
    try:
        with torch.no_grad():
            for x in batches:
                if used >= num_batches:
                    break
                with autocast(dev, amp_dtype):
                    _forward(model)(x.to(dev, non_blocking=True))
                used += 1
    finally:
        for h in handles:
            h.remove()
    if used == 0:
        raise VidsslError("precise BN: no training clip to estimate the BatchNorm statistics on")
    for m in layers:
        s, sq, n = sums[id(m)]
        mean = s / n
        var = (sq / n - mean.pow(2)).clamp_min(0.0)
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
    model.eval()
    return model, used


def train_clip_batches(index: VideoIndex, *, batch_size: int, num_clips: int, num_crops: int,
                       clip_len: int, stride: int, size: int, resize_size: int, mean, std,
                       decoder: str, num_workers: int = 0, seed: int = 0,
                       device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Batches of exactly ``batch_size`` normalised clips (the last one may be smaller): the
    feature views of ``index``'s videos, in a seeded random video order."""
    from vidssl.eval.features import EvalClips, _one_thread_worker, collate_eval

    dev = resolve_device(device)
    data = EvalClips(index, num_clips=num_clips, num_crops=num_crops, clip_len=clip_len, stride=stride,
                     size=size, resize_size=resize_size, decoder=decoder)
    order = np.random.default_rng(seed).permutation(len(index)).tolist()
    per_video = num_clips * num_crops
    extra = {"prefetch_factor": 2, "worker_init_fn": _one_thread_worker} if num_workers > 0 else {}
    loader = DataLoader(data, batch_size=max(1, batch_size // per_video), sampler=order,
                        num_workers=num_workers, collate_fn=collate_eval, **extra)
    norm = Compose([Normalize(mean, std), ToModelLayout()])
    pending: list[torch.Tensor] = []
    held = 0
    for batch in loader:
        if batch["clips"] is None:
            continue
        flat = batch["clips"].flatten(0, 2)                 # (B*K*C, T, 3, s, s) uint8
        pending.append(flat)
        held += len(flat)
        while held >= batch_size:
            cat = torch.cat(pending)
            yield norm(cat[:batch_size].to(dev, non_blocking=True))
            rest = cat[batch_size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield norm(torch.cat(pending).to(dev, non_blocking=True))
