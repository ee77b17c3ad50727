"""CoCLR's multi-instance InfoNCE and its positive mining (Han et al., NeurIPS 2020).

Reference code: ``TengdaHan/CoCLR`` (model/pretrain.py ``CoCLR``).
"""

from __future__ import annotations

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


def mine_positives(query_other: torch.Tensor, queue_other: torch.Tensor, k: int) -> torch.Tensor:
    """For each query, the ``k`` queue entries nearest in the other modality (cosine; inputs
    L2-normalised).

    Shape:
        - query_other: ``(N, E)``; queue_other: ``(Q, E)``.
        - output: bool ``(N, Q)``, ``k`` entries ``True`` per row.
    """
    idx = (query_other @ queue_other.T).topk(k, dim=1).indices
    return torch.zeros(query_other.shape[0], queue_other.shape[0], dtype=torch.bool,
                       device=query_other.device).scatter_(1, idx, True)


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
