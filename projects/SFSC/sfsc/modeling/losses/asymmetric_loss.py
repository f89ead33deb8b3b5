"""Asymmetric metric loss (Budnik & Avrithis 2021): the student embeds the anchor (query side),
the teacher embeds the other side (gallery), and the teacher is not updated by this loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["asymmetric_loss", "ASYMMETRIC_KINDS"]

ASYMMETRIC_KINDS = ("contrastive", "triplet")


def asymmetric_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
                    kind: str = "contrastive", margin: float = 0.7) -> torch.Tensor:
    """Contrastive or batch-hard triplet loss between student anchors and teacher features.

    student, teacher (N, D) features of the same batch (L2-normalised here); targets (N,).
    contrastive: ½·mean_pos(d²) + ½·mean_neg([m − d]₊²), d = ‖s(a) − t(x)‖ over all pairs.
    triplet: mean_a [max_p d²(a, p) − min_n d²(a, n) + m]₊.
    ``kind`` is one of ASYMMETRIC_KINDS (SFSC.ASYMMETRIC.TYPE, checked by the config's loss).
    """
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.detach().float(), dim=1)
    dist2 = (2.0 - 2.0 * s @ t.t()).clamp_min(0.0)  # squared distance of unit vectors
    same = targets[:, None] == targets[None, :]
    if kind == "contrastive":
        dist = (dist2 + 1e-12).sqrt()
        pos = dist2[same].mean()
        neg = (margin - dist[~same]).clamp_min(0.0).pow(2)
        return 0.5 * pos + 0.5 * (neg.mean() if neg.numel() else dist2.new_zeros(()))
    assert kind == "triplet", kind
    hardest_pos = dist2.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_neg = dist2.masked_fill(same, float("inf")).amin(dim=1)
    valid = torch.isfinite(hardest_neg)
    return (hardest_pos - hardest_neg + margin)[valid].clamp_min(0.0).mean()
