"""LSS's losses in a concept space (Ranasinghe & Ryoo, NeurIPS 2023; forms chosen where the paper
could not be confirmed, see ``docs/language.md``).

Inputs are **concept similarities**: cosine between an L2-normalised visual embedding and the
``K`` concept vectors, shape ``(B, K)``.

- :func:`concept_distillation`: DINO-style cross-entropy between the teacher's centred,
  sharpened distribution over concepts (``softmax((s_t - center) / tau_t)``, no gradient) and the
  student's (``log_softmax(s_s / tau_s)``), averaged over every (teacher view, other student view)
  pair.
- :func:`concept_alignment`, by ``form``:

  * ``"class_attribute"``: actions and their attributes must agree. With concepts = classes
    followed by attributes (``class_index`` maps each to its class), the student's
    distribution over attribute concepts, summed per class, is trained toward the teacher's
    distribution over the class concepts (cross-entropy; teacher detached).
  * ``"entropy"``: each sample's concept distribution sharp, the batch's mean distribution
    spread: ``mean_b H(p_b) - H(mean_b p_b)`` (no attributes needed).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from vidssl.runtime import dist

ALIGNMENT_FORMS: tuple[str, ...] = ("class_attribute", "entropy", "none")


def teacher_distribution(sims: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax((sims - center) / temperature)`` without gradient. Shape: ``(B, K)``, center ``(K,)``."""
    return F.softmax((sims.detach() - center) / temperature, dim=-1)


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_sims: torch.Tensor, momentum: float) -> None:
    """DINO's centre, in place: ``center = m * center + (1 - m) * mean(teacher_sims)``, the mean
    over the global batch (every rank). Shape: center ``(K,)``, teacher_sims ``(N, K)``."""
    mean = dist.all_reduce_mean(teacher_sims.mean(dim=0))
    center.mul_(momentum).add_(mean, alpha=1 - momentum)


def concept_distillation(teacher_sims: Sequence[torch.Tensor], student_sims: Sequence[torch.Tensor],
                         center: torch.Tensor, teacher_temp: float = 0.04,
                         student_temp: float = 0.1) -> torch.Tensor:
    """Mean over pairs ``(i, j), j != i`` of ``-sum_k p_t^i[k] log p_s^j[k]`` (batch mean).

    Args:
        teacher_sims: ``G`` tensors ``(B, K)`` (the global views; view ``i`` of the teacher and
            view ``i`` of the student are the same clip and are not paired).
        student_sims: ``V >= G`` tensors ``(B, K)``: the same global views first, then locals.
    """
    if len(student_sims) < len(teacher_sims) or not teacher_sims:
        raise ValueError("the student must see every teacher view (globals first)")
    total, pairs = 0.0, 0
    logps = [F.log_softmax(s / student_temp, dim=-1) for s in student_sims]
    for i, t in enumerate(teacher_sims):
        p = teacher_distribution(t, center, teacher_temp)
        for j, lp in enumerate(logps):
            if j == i:
                continue
            total = total + (-(p * lp).sum(dim=-1)).mean()
            pairs += 1
    if pairs == 0:
        raise ValueError("concept distillation needs at least two views")
    return total / pairs


def class_attribute_alignment(student_sims: torch.Tensor, teacher_sims: torch.Tensor,
                              class_index: torch.Tensor, num_classes: int, center: torch.Tensor,
                              teacher_temp: float = 0.04, student_temp: float = 0.1) -> torch.Tensor:
    """Cross-entropy from the teacher's class-concept distribution to the student's attribute
    distribution pooled per class.

    Shape: sims ``(B, K)`` with concepts ``[0, C)`` the classes and ``[C, K)`` attributes;
    ``class_index`` ``(K,)``; center ``(K,)``.
    """
    if student_sims.shape[1] <= num_classes:
        raise ValueError("class_attribute alignment needs attribute concepts (concept mode 'separate')")
    p_t = teacher_distribution(teacher_sims[:, :num_classes], center[:num_classes], teacher_temp)
    attr = F.softmax(student_sims[:, num_classes:] / student_temp, dim=-1)
    pooled = torch.zeros(attr.shape[0], num_classes, dtype=attr.dtype, device=attr.device)
    pooled = pooled.index_add(1, class_index[num_classes:].to(attr.device), attr)
    return (-(p_t * pooled.clamp_min(1e-8).log()).sum(dim=-1)).mean()


def mean_entropy(p: torch.Tensor) -> torch.Tensor:
    """``mean_b H(p_b)`` of distributions ``(B, K)`` (``log`` clamped at 1e-8)."""
    return -(p * p.clamp_min(1e-8).log()).sum(dim=-1).mean()


def entropy_alignment(student_sims: torch.Tensor, student_temp: float = 0.1) -> torch.Tensor:
    """``mean_b H(p_b) - H(mean_b p_b)`` with ``p = softmax(sims / student_temp)``. Shape ``(B, K)``."""
    p = F.softmax(student_sims / student_temp, dim=-1)
    h = mean_entropy(p)
    m = p.mean(dim=0)
    return h + (m * m.clamp_min(1e-8).log()).sum()


def concept_alignment(form: str, student_sims: Sequence[torch.Tensor], teacher_sims: Sequence[torch.Tensor],
                      class_index: torch.Tensor, num_classes: int, center: torch.Tensor,
                      teacher_temp: float = 0.04, student_temp: float = 0.1) -> torch.Tensor:
    """The alignment term of ``form`` (:data:`ALIGNMENT_FORMS`) over a step's views.

    ``"class_attribute"``: :func:`class_attribute_alignment` of student view ``j`` toward teacher
    view ``i``, averaged over the pairs ``i != j`` of the ``G`` teacher (global) views (the one
    pair ``(0, 0)`` when ``G = 1``). ``"entropy"``: :func:`entropy_alignment` averaged over the
    student views. ``"none"``: 0.

    Shape: sims ``(B, K)`` each (students: globals then locals; teachers: the globals).
    """
    g = len(teacher_sims)
    if form == "class_attribute":
        total = sum(class_attribute_alignment(student_sims[j], teacher_sims[i], class_index, num_classes, center,
                                              teacher_temp, student_temp)
                    for i in range(g) for j in range(g) if i != j or g == 1)
        return total / max(1, g * (g - 1))
    if form == "entropy":
        return sum(entropy_alignment(s, student_temp) for s in student_sims) / len(student_sims)
    if form == "none":
        return torch.zeros((), device=center.device)
    raise ValueError(f"alignment must be one of {ALIGNMENT_FORMS}, got {form!r}")
