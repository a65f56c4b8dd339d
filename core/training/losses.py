"""Losses: cross-entropy against hard or soft targets (label smoothing included), and distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against class indices [N] or soft targets [N, K] (from Mixup and friends).

    With label smoothing the target becomes (1 - eps) * target + eps / K (Szegedy et al. 2016),
    for hard and soft targets alike.
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets).

    Both distributions are softened by the temperature T; the T^2 factor keeps the soft term's
    gradients on the same scale as the hard term's when T changes.
    """
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard = classification_loss(student_logits, targets, label_smoothing)
    return alpha * t * t * soft + (1 - alpha) * hard
