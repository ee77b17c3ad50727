"""``torch.distributed`` helpers that are no-ops in a single process.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``; :func:`init_distributed`
reads them (gloo on CPU, nccl on CUDA). The same code path runs single-process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_distributed(device: torch.device) -> bool:
    """Join the process group when launched by ``torchrun``; returns whether it did."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    store = _attempt_store()
    if store is None:
        dist.init_process_group(backend=backend)
    else:
        dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    return True


def _attempt_store() -> "dist.Store | None":
    """The agent's store seen through a prefix unique to this restart, or ``None`` to let
    ``init_process_group`` use ``env://`` as usual.

    torchrun's c10d rendezvous shares one TCPStore server across restarts and the workers'
    ``env://`` store adds no per-attempt prefix, so after ``--max-restarts`` relaunches a group
    the new ranks can read the previous attempt's keys: gloo then dials a dead rank's port
    ("connectFullMesh failed ... Connection refused") or the init barrier hangs (measured here:
    2 of 3 restarted runs failed; pytorch/pytorch#135712, #167288). On one node every worker
    shares the agent's restart count, so ``TORCHELASTIC_RESTART_COUNT`` is a consistent
    prefix. Across nodes it is not (an agent that restarts healthy workers because another
    node failed does not count it), so there vidssl leaves the store alone and the docs say to
    launch with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, which gives every round a fresh store.
    """
    env = os.environ
    if (env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "TORCHELASTIC_RESTART_COUNT" not in env
            or env.get("LOCAL_WORLD_SIZE") != env.get("WORLD_SIZE")):
        return None
    from torch.distributed.constants import default_pg_timeout

    base = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), int(env["WORLD_SIZE"]),
                         is_master=False, timeout=default_pg_timeout)
    return dist.PrefixStore(f"vidssl/attempt_{env['TORCHELASTIC_RESTART_COUNT']}", base)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (``(B, ...)``) from every rank along dim 0, keeping gradients.

    The result is ordered by rank, so this rank's rows are at
    ``[rank * B, (rank + 1) * B)`` (equal per-rank batches assumed, as DDP's sampler gives).
    Single process: ``x`` itself.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` forward; backward: every rank's gradient for the gathered rows is summed
    (``all_reduce``) and this rank keeps its own rows, so ``x`` gets the gradient of every
    rank's loss. Written here instead of ``torch.distributed.nn.functional.all_gather``, which
    is deprecated (a FutureWarning on every run) and whose gloo backward sent wrong values for
    non-contiguous gradient slices (measured in tests/losses); here the gradient is copied
    contiguous before it is reduced."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)  # reduced in place: not autograd's
        dist.all_reduce(grad)
        start = rank() * ctx.rows
        return grad[start:start + ctx.rows]


def all_gather_object(obj: object) -> list:
    """Every rank's ``obj`` in rank order (picklable objects); ``[obj]`` single-process."""
    if not is_distributed():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (no gradient); ``x`` itself single-process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()
