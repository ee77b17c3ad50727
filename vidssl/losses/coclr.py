"""CoCLR's multi-instance InfoNCE and its positive mining (Han et al., NeurIPS 2020).

Reference code: ``TengdaHan/CoCLR`` (model/pretrain.py ``CoCLR``).
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["multi_positive_nce", "mine_positives", "queue_positives"]


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """``-log sum_{p in P} exp(l_p) / sum_n exp(l_n)`` per row, averaged.

    Shape:
        - logits: ``(N, M)`` similarities already divided by ``tau``.
        - positives: ``(N, M)`` bool, at least one ``True`` per row.
        - output: scalar.
    """
    if positives.shape != logits.shape or not bool(positives.any(1).all()):
        raise ValueError("positives must match logits and hold at least one positive per row")
    pos = logits.masked_fill(~positives, float("-inf")).logsumexp(1)
    return (logits.logsumexp(1) - pos).mean()


def mine_positives(anchor_other: torch.Tensor, queue_other: torch.Tensor, k: int,
                   exclude: Optional[torch.Tensor] = None) -> torch.Tensor:
    """For each row, the ``k`` queue entries nearest in the other modality (cosine; inputs
    L2-normalised), never an ``exclude``-d entry.

    The authors (``model/pretrain.py`` ``CoCLR.forward``) mine with the *key* clip's
    other-modality embedding and set the similarity of same-source entries (the query's own
    video, or its UCF101 source video) to ``-inf`` first, so that ``k`` *new* positives are
    found. A row with fewer than ``k`` entries left gets only those.

    Shape:
        - anchor_other: ``(N, E)``; queue_other: ``(Q, E)``; exclude: bool ``(N, Q)`` or None.
        - output: bool ``(N, Q)``, at most ``k`` entries ``True`` per row.
    """
    sim = anchor_other @ queue_other.T
    if exclude is not None:
        sim = sim.masked_fill(exclude, float("-inf"))
    top = sim.topk(k, dim=1)
    mined = torch.zeros_like(sim, dtype=torch.bool)
    return mined.scatter_(1, top.indices, torch.isfinite(top.values))


def queue_positives(video: torch.Tensor, queue_video: torch.Tensor, group: torch.Tensor,
                    queue_group: torch.Tensor, *, same_video: str = "positive",
                    group_positives: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives among ``[true key, queue entries]`` before mining, and which queue entries hold
    a key of the query's own video (ids < 0 match nothing).

    The true key is always a positive; queued keys of the query's video are positives when
    ``same_video == "positive"``; with ``group_positives`` so are keys of its group.

    Shape:
        - video, group: ``(N,)`` int64; queue_video, queue_group: ``(Q,)`` int64.
        - output: ``(positives, same_video_mask)``, both bool ``(N, 1 + Q)``.
    """
    n, q = video.shape[0], queue_video.shape[0]
    positives = torch.zeros(n, 1 + q, dtype=torch.bool, device=video.device)
    positives[:, 0] = True
    same = torch.zeros_like(positives)
    same[:, 1:] = (video[:, None] == queue_video[None, :]) & (video[:, None] >= 0)
    if same_video == "positive":
        positives |= same
    if group_positives:
        positives[:, 1:] |= (group[:, None] == queue_group[None, :]) & (group[:, None] >= 0)
    return positives, same
