"""DPC's dense predictive contrastive loss (Han et al., ICCVW 2019).

Every predicted feature ``pred[i, k, p]`` (video ``i``, future step ``k``, spatial position
``p``) must pick the true feature ``target[i, k, p]`` among all ``target[j, m, q]``: other
videos (easy negatives), other positions of the same step (spatial negatives) and other steps
of the same video (temporal negatives). Cross-entropy over the ``N K P`` candidates, with the
candidates gathered over ranks under DDP so the negatives do not depend on the per-GPU batch.

Scores are raw dot products as in the authors' code (``similarity="dot"``); ``"cosine"``
normalises both sides and divides by ``temperature``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.losses.info_nce import check_temperature, gather_batch
from vidssl.runtime import dist

__all__ = ["DenseContrastiveLoss", "SIMILARITIES"]

SIMILARITIES: tuple[str, ...] = ("dot", "cosine")


class DenseContrastiveLoss(nn.Module):
    """Args:
        similarity: ``"dot"`` (DPC) or ``"cosine"``.
        temperature: ``tau`` for ``"cosine"`` (ignored for ``"dot"``).
        gather_distributed: candidates from every rank.

    Shape:
        - pred, target: ``(N, K, D, H, W)``: ``K`` future steps of ``N`` videos.
        - output: scalar loss; with ``return_stats``, also ``acc`` (top-1), ``acc_easy`` (the
          positive beats every other video's features) and ``acc_temporal`` (it beats the same
          position at the other steps of its own video).
    """

    def __init__(self, similarity: str = "dot", temperature: float = 0.07, gather_distributed: bool = True):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.similarity = similarity
        self.temperature = check_temperature(temperature)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, return_stats: bool = False):
        if pred.ndim != 5 or pred.shape != target.shape:
            raise ValueError(f"pred and target must both be (N, K, D, H, W), got {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        n, k, d, h, w = pred.shape
        q = pred.permute(0, 1, 3, 4, 2).reshape(n * k * h * w, d).float()
        t = target.permute(0, 1, 3, 4, 2).reshape(n * k * h * w, d).float()
        if self.similarity == "cosine":
            q, t = F.normalize(q, dim=-1), F.normalize(t, dim=-1)
        if self.gather_distributed and dist.world_size() > 1:
            cands, offset = gather_batch(t, batch_dim=0), dist.rank() * t.shape[0]
        else:
            cands, offset = t, 0
        logits = q @ cands.T
        if self.similarity == "cosine":
            logits = logits / self.temperature
        labels = torch.arange(q.shape[0], device=q.device) + offset
        loss = F.cross_entropy(logits, labels)
        if not return_stats:
            return loss
        with torch.no_grad():
            pos = logits.gather(1, labels[:, None])
            acc = (logits.argmax(1) == labels).float().mean()
            # easy: every candidate from another video (this rank's rows of video i are a block)
            per_video = k * h * w
            video_of_cand = torch.arange(cands.shape[0], device=q.device) // per_video
            own_video = labels // per_video
            other = video_of_cand[None, :] != own_video[:, None]
            acc_easy = (pos.squeeze(1) > logits.masked_fill(~other, float("-inf")).amax(1)).float().mean()
            # temporal: same video, same position, other steps
            local = logits[:, offset:offset + q.shape[0]].view(n, k, h * w, n, k, h * w)
            idx = torch.arange(n, device=q.device)
            same_pos = local[idx, :, :, idx].diagonal(dim1=2, dim2=4)       # (n, k, k', p)
            diag = same_pos.diagonal(dim1=1, dim2=2)                          # (n, p, k)
            off = same_pos.masked_fill(torch.eye(k, dtype=torch.bool, device=q.device)[None, :, :, None],
                                       float("-inf")).amax(2)                 # (n, k, p)
            acc_temporal = (diag.transpose(1, 2) > off).float().mean() if k > 1 else acc.new_ones(())
        return loss, {"acc": acc, "acc_easy": acc_easy, "acc_temporal": acc_temporal,
                      "chance": acc.new_tensor(1.0 / cands.shape[0])}

    def extra_repr(self) -> str:
        return f"similarity={self.similarity!r}, temperature={self.temperature}, gather_distributed={self.gather_distributed}"
