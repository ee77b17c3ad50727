"""Memory options for large models: activation checkpointing and FSDP (PyTorch's ``fully_shard``).

- :func:`transformer_blocks`: the repeated blocks of a model built from ``transformers`` layers
  (VideoMAE / V-JEPA 2 encoder layers, a VideoMAE decoder, a V-JEPA predictor): the unit of both
  options.
- :func:`enable_activation_checkpointing`: each block's activations are recomputed in the
  backward pass instead of kept (``torch.utils.checkpoint``, non-reentrant): memory for compute.
- :func:`shard_model`: ``train.strategy: fsdp``. Every block becomes its own FSDP unit and the
  whole model the root unit (``torch.distributed.fsdp.fully_shard`` on a 1-D device mesh of all
  ranks): parameters, gradients and optimiser state are split over the ranks, each block's
  parameters gathered only while it runs. A model without transformer blocks (a CNN) is one
  unit. Gradients are averaged over ranks like DDP's.
- :func:`full_state_dicts` / :func:`load_full_state_dicts`: the unsharded model and optimiser
  state a checkpoint holds (collectives: every rank calls them; rank 0 gets the tensors).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from vidssl.errors import ConfigError

__all__ = ["STRATEGIES", "transformer_blocks", "enable_activation_checkpointing", "shard_model",
           "full_state_dicts", "load_full_state_dicts"]

STRATEGIES = ("ddp", "fsdp")


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The ``transformers`` layers (``GradientCheckpointingLayer``) inside ``model``, outermost
    only (a layer inside another is part of that one), in module order."""
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # no transformers: no such blocks
        return []
    found: list[nn.Module] = []
    prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in prefixes):
            continue
        if isinstance(module, GradientCheckpointingLayer):
            found.append(module)
            prefixes.append(name + ".")
    return found


def enable_activation_checkpointing(model: nn.Module, *, what: str = "the model") -> int:
    """Recompute every transformer block's activations during backward (non-reentrant
    ``torch.utils.checkpoint``); returns how many blocks. Outputs and gradients are unchanged.

    Raises:
        ConfigError: ``model`` has no transformer blocks (activation checkpointing is offered
            for the ViT encoders and the masked methods' decoders / predictors).
    """
    blocks = transformer_blocks(model)
    if not blocks:
        raise ConfigError(f"train.activation_checkpointing needs transformer blocks (ViT encoders: videomae_*, "
                          f"vjepa2_*); {what} has none")
    fn = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    for block in blocks:
        block.gradient_checkpointing = True
        block._gradient_checkpointing_func = fn
    return len(blocks)


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``fully_shard`` every transformer block, then ``model`` itself, over all ranks (in place;
    returns ``model``). Build the optimiser *after* this: the parameters become DTensors.

    Rank 0's parameters and buffers are broadcast first (as DDP's constructor does): each rank
    built its model from its own seed, and ``fully_shard`` keeps every rank's own slice, which
    would otherwise stitch one model out of differently initialised ones."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """``(model state, optimiser state)`` unsharded on CPU (rank 0; other ranks get empty dicts).
    The model state has the keys of ``model.state_dict()``; the optimiser state is keyed by
    parameter name (``torch.distributed.checkpoint.state_dict``'s full layout)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def load_full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer | None, model_state: dict,
                          optim_state: dict | None) -> None:
    """Load unsharded states (every rank passes the full dicts) into a sharded or plain model
    and its optimiser; ``optim_state`` in the name-keyed layout of :func:`full_state_dicts`."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, strict=True)
    set_model_state_dict(model, model_state, options=opts)
    if optimizer is not None and optim_state is not None:
        set_optimizer_state_dict(model, optimizer, optim_state, options=opts)


def is_name_keyed(optim_state: Any) -> bool:
    """Whether an optimiser state dict is in the name-keyed (FSDP checkpoint) layout."""
    state = optim_state.get("state", {}) if isinstance(optim_state, dict) else {}
    return bool(state) and all(isinstance(k, str) for k in state)
