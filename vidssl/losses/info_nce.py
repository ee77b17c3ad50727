"""NT-Xent / InfoNCE between two views (SimCLR, CVRL, TCLR's instance loss).

Every clip has two views; the pair of views of one clip is the positive, every other view in the
(globally gathered) batch is a negative. With ``2N`` embeddings on this rank and ``2M`` over all
ranks (``M = N * world_size``), anchor ``z0[i]`` is scored against all ``2M`` embeddings except
itself:

.. math::

    \\ell(z0_i) = -\\log \\frac{\\exp(s(z0_i, z1_{o+i}) / \\tau)}
        {\\sum_{j} \\exp(s(z0_i, z1_j) / \\tau) + \\sum_{j \\ne o+i} \\exp(s(z0_i, z0_j) / \\tau)}

with ``s`` the cosine similarity, ``o = rank * N`` this rank's offset in the gathered batch, and
the same for ``z1_i`` with the roles swapped ("both directions"). The loss is the mean of the
``2N`` anchors (``reduction="mean"``, SimCLR's ``1 / 2N`` sum, lightly's ``NTXentLoss``), or
the sum of the two directional means (``reduction="sum"``, the TF SimCLR / CVRL code's
``loss_a + loss_b``, exactly twice the mean).

Under DDP each rank computes the loss of its own anchors against the gathered candidates;
:func:`~vidssl.runtime.dist.gather_with_grad` sends the candidates' gradients back to their rank,
so DDP's gradient average equals the gradient of the loss of the whole global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.runtime import dist

__all__ = ["InfoNCELoss", "nt_xent", "nt_xent_logits", "gather_batch", "REDUCTIONS"]

REDUCTIONS: tuple[str, ...] = ("mean", "sum")


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; a ``ValueError`` unless it is a finite number ``> 0``."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    t = float(temperature)
    if not (t > 0.0 and t < float("inf")):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_pair(z0: torch.Tensor, z1: torch.Tensor, min_dim: int = 2) -> None:
    """Both views must have the same shape ``(..., N, D)`` with ``N >= 1``."""
    if not isinstance(z0, torch.Tensor) or not isinstance(z1, torch.Tensor):
        raise TypeError("the two views must be tensors")
    if z0.shape != z1.shape:
        raise ValueError(f"the two views must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if z0.ndim < min_dim:
        raise ValueError(f"expected embeddings of shape (..., N, D), got {tuple(z0.shape)}")
    if z0.shape[-2] < 1 or z0.shape[-1] < 1:
        raise ValueError(f"empty embeddings: shape {tuple(z0.shape)}")


def gather_batch(z: torch.Tensor, batch_dim: int = -2) -> torch.Tensor:
    """Concatenate ``z`` from every rank along ``batch_dim`` (rank-ordered, with gradients).

    Single process: ``z`` itself. This rank's rows are at ``[rank * N, (rank + 1) * N)``.
    """
    if dist.world_size() == 1:
        return z
    return dist.gather_with_grad(z.movedim(batch_dim, 0)).movedim(0, batch_dim)


def nt_xent_logits(
    q0: torch.Tensor,
    q1: torch.Tensor,
    k0: torch.Tensor,
    k1: torch.Tensor,
    offset: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of the two-view contrastive task (inputs already L2-normalised).

    Args:
        q0, q1: ``(..., N, D)`` this rank's views (anchors); row ``i`` of both is one clip.
        k0, k1: ``(..., M, D)`` the candidates (the gathered views); ``q0[..., i]`` is
            ``k0[..., offset + i]``.
        offset: this rank's first row in the candidates.
        temperature: ``tau``.

    Returns:
        ``logits`` ``(..., 2N, 2M)`` float32 and ``targets`` ``(2N,)`` int64. Row ``i < N`` is
        anchor ``q0[i]`` against ``[k1, k0]`` (its own entry in ``k0`` is ``-inf``); row
        ``N + i`` is ``q1[i]`` against ``[k0, k1]``. The target of both is column
        ``offset + i`` (the other view of the same clip).
    """
    n, m = q0.shape[-2], k0.shape[-2]
    if not 0 <= offset <= m - n:
        raise ValueError(f"offset {offset} does not place {n} anchors inside {m} candidates")
    q0, q1, k0, k1 = (t.float() for t in (q0, q1, k0, k1))
    idx = torch.arange(n, device=q0.device)
    self_mask = torch.zeros(n, m, dtype=torch.bool, device=q0.device)
    self_mask[idx, offset + idx] = True
    neg_inf = float("-inf")
    logits_01 = q0 @ k1.transpose(-1, -2)
    logits_00 = (q0 @ k0.transpose(-1, -2)).masked_fill(self_mask, neg_inf)
    logits_10 = q1 @ k0.transpose(-1, -2)
    logits_11 = (q1 @ k1.transpose(-1, -2)).masked_fill(self_mask, neg_inf)
    logits = torch.cat(
        [torch.cat([logits_01, logits_00], dim=-1), torch.cat([logits_10, logits_11], dim=-1)], dim=-2
    ) / temperature
    targets = (offset + idx).repeat(2)
    return logits, targets


def nt_xent(
    q0: torch.Tensor,
    q1: torch.Tensor,
    k0: torch.Tensor | None = None,
    k1: torch.Tensor | None = None,
    offset: int = 0,
    temperature: float = 0.1,
    reduction: str = "mean",
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NT-Xent of L2-normalised views against given candidates (no gathering, no normalising).

    Leading dimensions ``...`` are independent problems (e.g. TCLR's local-local loss: one
    problem per video, ``N = 4`` local clips). ``k0``/``k1`` default to ``q0``/``q1``
    (in-batch negatives only).

    Shape:
        - q0, q1: ``(..., N, D)``; k0, k1: ``(..., M, D)``.
        - output: scalar (mean over anchors and problems; ``reduction="sum"`` doubles it).

    Returns:
        the loss, and with ``return_stats`` a dict of detached scalars: ``acc`` (fraction of
        anchors whose highest logit is the positive), ``pos_sim`` (mean cosine of the positive
        pairs), ``neg_sim`` (mean cosine to the negatives), ``chance`` (``acc`` of a guess at
        random: the mean of 1 / candidates per anchor).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    k0 = q0 if k0 is None else k0
    k1 = q1 if k1 is None else k1
    logits, targets = nt_xent_logits(q0, q1, k0, k1, offset, temperature)
    lead = logits.shape[:-2]
    flat = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.expand(*lead, targets.numel()).reshape(-1)
    loss = F.cross_entropy(flat, flat_targets)
    if reduction == "sum":
        loss = 2.0 * loss
    if not return_stats:
        return loss
    with torch.no_grad():
        acc = (flat.argmax(dim=-1) == flat_targets).float().mean()
        pos = flat.gather(1, flat_targets[:, None]).mean() * temperature
        finite = torch.isfinite(flat)
        negatives = finite.clone()
        negatives.scatter_(1, flat_targets[:, None], False)
        neg = (flat.where(negatives, torch.zeros_like(flat)).sum() / negatives.sum().clamp(min=1)) * temperature
        chance = (1.0 / finite.sum(1).clamp(min=1).float()).mean()
    return loss, {"acc": acc, "pos_sim": pos, "neg_sim": neg, "chance": chance}


class InfoNCELoss(nn.Module):
    """NT-Xent (normalised temperature-scaled cross entropy) between two views, both directions.

    Embeddings are L2-normalised (cosine similarity); with ``gather_distributed`` the negatives
    are all other clips of the global batch (gathered from every rank with gradients), and this
    rank's positives sit at offset ``rank * N`` of the gathered batch. See the module docstring
    for the formula.

    Args:
        temperature: ``tau > 0`` (CVRL and TCLR use 0.1).
        gather_distributed: under ``torch.distributed``, take negatives from all ranks.
        reduction: ``"mean"`` over the ``2N`` anchors, or ``"sum"`` of the two directional
            means (CVRL's TF code).

    Shape:
        - z0, z1: ``(N, D)`` (row ``i`` of both is one clip), or ``(..., N, D)`` for
          independent problems sharing the same rank layout; ``N`` is the per-rank batch.
        - output: scalar.

    Examples:
        >>> loss_fn = InfoNCELoss(temperature=0.1)
        >>> z0, z1 = head(encoder(view0)), head(encoder(view1))
        >>> loss = loss_fn(z0, z1)
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True, reduction: str = "mean"):
        super().__init__()
        self.temperature = check_temperature(temperature)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.gather_distributed = bool(gather_distributed)

    def forward(
        self, z0: torch.Tensor, z1: torch.Tensor, return_stats: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_pair(z0, z1)
        q0, q1 = F.normalize(z0.float(), dim=-1), F.normalize(z1.float(), dim=-1)
        if self.gather_distributed and dist.world_size() > 1:
            k0, k1 = gather_batch(torch.stack([q0, q1])).unbind(0)
            offset = dist.rank() * q0.shape[-2]
        else:
            k0, k1, offset = q0, q1, 0
        return nt_xent(q0, q1, k0, k1, offset, self.temperature, self.reduction, return_stats)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}, reduction={self.reduction!r}"
