"""In-place distillation (Yu & Huang 2019, US-Nets): a sub-network learns the full network's
detached class posterior.

Here each sub-model's feature already goes through the full model's classifier for its
compatible loss, and the full model's own logits come from the same forward, so the teacher
costs no extra pass. The loss is Hinton's soft-target KL at a temperature T, times T² so that
its gradient keeps the scale of a hard-label loss as T changes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["InplaceDistillation", "distillation_kl"]


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), mean over the batch.

    student_logits, teacher_logits (N, C); the teacher is detached here. Computed in fp32.
    """
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=1)
    log_p = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * (t * t)


class InplaceDistillation:
    """SFSC.DISTILL: ``weight · distillation_kl(student, teacher, temperature)``."""

    def __init__(self, weight: float, temperature: float):
        self.weight = float(weight)
        self.temperature = float(temperature)

    @classmethod
    def from_config(cls, cfg):
        """None when SFSC.DISTILL.WEIGHT is 0; a key that cannot work raises ValueError."""
        d, s = cfg.SFSC.DISTILL, cfg.SFSC
        if not (math.isfinite(d.WEIGHT) and d.WEIGHT >= 0):
            raise ValueError(f"SFSC.DISTILL.WEIGHT must be a finite number >= 0 (0: off), got "
                             f"{d.WEIGHT}")
        if not (math.isfinite(d.TEMPERATURE) and d.TEMPERATURE > 0):
            raise ValueError(f"SFSC.DISTILL.TEMPERATURE must be a finite number > 0, got "
                             f"{d.TEMPERATURE}")
        if d.WEIGHT == 0:
            return None
        if s.COMPAT_LOSS == "none" or not s.WIDTHS:
            raise ValueError("SFSC.DISTILL.WEIGHT > 0 adds distillation to the sub-models' "
                             "compatible tasks, but there are none (SFSC.COMPAT_LOSS none or "
                             "SFSC.WIDTHS empty)")
        if s.OLD_MODEL.WEIGHTS:
            raise ValueError("SFSC.DISTILL.WEIGHT > 0: the teacher is the full model trained "
                             "with its sub-models, which one-to-one training "
                             "(SFSC.OLD_MODEL.WEIGHTS) does not have; set SFSC.DISTILL.WEIGHT 0")
        return cls(d.WEIGHT, d.TEMPERATURE)

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor
                 ) -> torch.Tensor:
        """(N, C) logits of a sub-model and of the full model, one classifier -> scalar."""
        return distillation_kl(student_logits, teacher_logits, self.temperature) * self.weight
