"""TCLR's three losses (Dave et al., CVIU 2022): instance (IC), local-local (LL), global-local (GL).

Notation: a batch of ``N`` videos (per rank), ``K`` local clips per video (4), two augmentation
draws ``a in {0, 1}`` of every clip, cosine similarity ``s`` and temperature ``tau`` (0.1).

- **IC** (:class:`TCLRInstanceLoss`): NT-Xent (:mod:`vidssl.losses.info_nce`) with clips of other
  videos as negatives, gathered over ranks. On the two draws of the global clip, and on pairs of
  local-clip views: ``local_pairs="all"`` (the authors' code, ``train_gen_all_step.py``) takes
  every pair of distinct views among the ``2K`` local views of a video as a positive pair (two
  local clips of one video are the same *instance*); ``"same_clip"`` takes only the two draws of
  one local clip; ``"none"`` skips local clips.
- **LL** (:class:`LocalLocalLoss`): inside one video, NT-Xent over its ``2K`` local views: the
  positive of local clip ``k`` under draw ``a`` is clip ``k`` under the other draw; the
  negatives are the other ``K - 1`` local clips of the *same* video under both draws
  (``2K - 2`` candidates, as the authors' per-video ``NTXentLoss(batch_size=4)``).
- **GL** (:class:`GlobalLocalLoss`): the global clip's feature map is cut into ``K`` temporal
  slices, each embedded by the shared head. ``S[k, j] = s(slice_k, local_j) / tau`` (``K x K``
  per video) is trained with cross-entropy toward the diagonal, on rows (slice -> local clip) and
  on columns (local clip -> slice).

Each loss is a mean over its anchors. The authors' code sums some of them;
:func:`authors_loss_scale` gives the factors that turn these means into the authors' terms
(``docs/methods.md``).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.losses.info_nce import check_temperature, gather_batch, nt_xent
from vidssl.runtime import dist

__all__ = ["TCLRInstanceLoss", "LocalLocalLoss", "GlobalLocalLoss", "LOCAL_PAIRS", "local_view_pairs",
           "authors_loss_scale"]

LOCAL_PAIRS: tuple[str, ...] = ("all", "same_clip", "none")


def local_view_pairs(num_local: int, mode: str) -> list[tuple[int, int]]:
    """Positive pairs among the ``2K`` local views, indexed ``a * K + k`` (draw ``a``, clip ``k``).

    ``"all"``: every pair of distinct views (``K (2K - 1)`` pairs, 28 for ``K = 4``);
    ``"same_clip"``: ``(k, K + k)`` for each clip; ``"none"``: no pair.
    """
    if mode not in LOCAL_PAIRS:
        raise ValueError(f"local_pairs must be one of {LOCAL_PAIRS}, got {mode!r}")
    if mode == "all":
        return list(itertools.combinations(range(2 * num_local), 2))
    if mode == "same_clip":
        return [(k, num_local + k) for k in range(num_local)]
    return []


def authors_loss_scale(num_local: int, batch_size: int, local_pairs: str = "all") -> dict[str, float]:
    """Factors ``{"ic_global", "ic_local", "ll", "gl"}`` by which the authors' summed terms
    exceed this module's means (``DAVEISHAN/TCLR`` ``tclr_pretraining/train_gen_all_step.py``;
    their ``NTXentLoss`` in ``contrastive_loss/nt_xent_original.py`` is a mean over its ``2N``
    anchors, their ``global_local_temporal_contrastive`` a sum over rows divided by ``2N``):

    - ``ic_global`` 1: ``loss_ic2`` is one NT-Xent on the two global draws;
    - ``ic_local`` ``P / 2``: ``loss_ic1`` adds the NT-Xent of every *ordered* pair of the chosen
      local views (``2P`` for ``P`` unordered pairs, NT-Xent being symmetric) and divides by 4;
      14 for ``K = 4`` and ``local_pairs="all"`` (56 ordered pairs);
    - ``ll`` ``batch_size``: the per-video ``NTXentLoss(batch_size=4)`` is summed over the
      videos of the batch (the whole batch: the authors run one process);
    - ``gl`` ``4 K``: four (global draw, local draw) pairs, each a sum of ``2 N K``
      cross-entropies over ``2 N``, i.e. ``K`` times the mean; 16 for ``K = 4``.

    The authors' code is written for ``K = 4`` only; other ``K`` follow the same sums.
    """
    if num_local < 2 or batch_size < 1:
        raise ValueError(f"need num_local >= 2 and batch_size >= 1, got {num_local} and {batch_size}")
    pairs = len(local_view_pairs(num_local, local_pairs))
    return {"ic_global": 1.0, "ic_local": pairs / 2, "ll": float(batch_size), "gl": 4.0 * num_local}


class TCLRInstanceLoss(nn.Module):
    """TCLR's instance-contrastive loss on the global clip and on the local clips.

    Args:
        temperature: ``tau > 0``.
        local_pairs: which local-view pairs are positives: ``"all"`` (authors' code),
            ``"same_clip"`` or ``"none"`` (see the module docstring).
        gather_distributed: take negatives from every rank.

    Shape:
        - global_z: ``(2, N, D)`` the two draws of the global clip.
        - local_z: ``(2, K, N, D)`` draw, local clip, video.
        - output: ``(loss_global, loss_local)``, two scalars; ``loss_local`` is the mean NT-Xent
          over the positive pairs (0 with ``"none"``).
    """

    def __init__(self, temperature: float = 0.1, local_pairs: str = "all", gather_distributed: bool = True):
        super().__init__()
        self.temperature = check_temperature(temperature)
        if local_pairs not in LOCAL_PAIRS:
            raise ValueError(f"local_pairs must be one of {LOCAL_PAIRS}, got {local_pairs!r}")
        self.local_pairs = local_pairs
        self.gather_distributed = bool(gather_distributed)

    def forward(
        self, global_z: torch.Tensor, local_z: torch.Tensor, return_stats: bool = False
    ) -> tuple[torch.Tensor, ...]:
        if global_z.ndim != 3 or global_z.shape[0] != 2:
            raise ValueError(f"global_z must be (2, N, D), got {tuple(global_z.shape)}")
        if local_z.ndim != 4 or local_z.shape[0] != 2 or local_z.shape[2:] != global_z.shape[1:]:
            raise ValueError(
                f"local_z must be (2, K, N, D) with N, D of global_z {tuple(global_z.shape)}, "
                f"got {tuple(local_z.shape)}"
            )
        k = local_z.shape[1]
        n = global_z.shape[1]
        views = F.normalize(torch.cat([global_z, local_z.flatten(0, 1)]).float(), dim=-1)  # (2 + 2K, N, D)
        if self.gather_distributed and dist.world_size() > 1:
            cands, offset = gather_batch(views), dist.rank() * n
        else:
            cands, offset = views, 0
        loss_global, stats = nt_xent(views[0], views[1], cands[0], cands[1], offset, self.temperature,
                                     return_stats=True)
        pairs = local_view_pairs(k, self.local_pairs)
        if pairs:
            p = torch.tensor([2 + a for a, _ in pairs], device=views.device)
            q = torch.tensor([2 + b for _, b in pairs], device=views.device)
            loss_local = nt_xent(views[p], views[q], cands[p], cands[q], offset, self.temperature)
        else:
            loss_local = views.new_zeros(())
        return (loss_global, loss_local, stats) if return_stats else (loss_global, loss_local)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, local_pairs={self.local_pairs!r}, gather_distributed={self.gather_distributed}"


class LocalLocalLoss(nn.Module):
    """TCLR's local-local temporal contrastive loss: NT-Xent among the local clips of each video.

    No gathering: every candidate comes from the same video.

    Args:
        temperature: ``tau > 0``.

    Shape:
        - z0, z1: ``(N, K, D)`` the local clips of each video under draw 0 and draw 1
          (``K >= 2``).
        - output: scalar, the mean over the ``2K`` anchors of the ``N`` videos.
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(
        self, z0: torch.Tensor, z1: torch.Tensor, return_stats: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if z0.ndim != 3 or z0.shape != z1.shape:
            raise ValueError(f"z0 and z1 must both be (N, K, D), got {tuple(z0.shape)} and {tuple(z1.shape)}")
        if z0.shape[1] < 2:
            raise ValueError(f"the local-local loss needs K >= 2 local clips per video, got {z0.shape[1]}")
        q0, q1 = F.normalize(z0.float(), dim=-1), F.normalize(z1.float(), dim=-1)
        return nt_xent(q0, q1, temperature=self.temperature, return_stats=return_stats)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class GlobalLocalLoss(nn.Module):
    """TCLR's global-local temporal contrastive loss.

    ``S = s(slices, locals) / tau`` is ``K x K`` per video; the loss is the mean of the
    cross-entropy of every row toward its diagonal entry (slice ``k`` must pick local clip ``k``
    among the video's ``K`` local clips) and of every column (local clip ``j`` must pick slice
    ``j``).

    Args:
        temperature: ``tau > 0``.

    Shape:
        - slices: ``(N, K, D)`` embeddings of the ``K`` temporal slices of each global clip.
        - local: ``(N, K, D)`` pooled embeddings of the ``K`` local clips, in temporal order.
        - output: scalar, the mean over the ``2 N K`` rows and columns.
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(
        self, slices: torch.Tensor, local: torch.Tensor, return_stats: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if slices.ndim != 3 or slices.shape != local.shape:
            raise ValueError(
                f"slices and local must both be (N, K, D), got {tuple(slices.shape)} and {tuple(local.shape)}"
            )
        if slices.shape[1] < 2:
            raise ValueError(f"the global-local loss needs K >= 2 slices, got {slices.shape[1]}")
        a, b = F.normalize(slices.float(), dim=-1), F.normalize(local.float(), dim=-1)
        sim = a @ b.transpose(1, 2) / self.temperature  # (N, K, K): [video, slice, local clip]
        k = sim.shape[-1]
        both = torch.cat([sim, sim.transpose(1, 2)]).reshape(-1, k)  # rows, then columns
        targets = torch.arange(k, device=sim.device).repeat(both.shape[0] // k)
        loss = F.cross_entropy(both, targets)
        if not return_stats:
            return loss
        with torch.no_grad():
            acc = (both.argmax(dim=-1) == targets).float().mean()
            pos = sim.diagonal(dim1=1, dim2=2).mean() * self.temperature
        return loss, {"acc": acc, "pos_sim": pos, "chance": acc.new_tensor(1.0 / k)}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
