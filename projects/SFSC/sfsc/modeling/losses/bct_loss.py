"""BCT's influence loss (Shen et al. 2020): new features must suit the old classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bct_loss"]


def bct_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of sub-model features through the reference classifier, batch mean.

    logits (N, C) = reference classifier · feature; targets (N,) int64. Computed in fp32.
    """
    return F.cross_entropy(logits.float(), targets)
