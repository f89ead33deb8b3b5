"""Compatible-loss warm-up: the compatible tasks ramp in after the full model has trained
alone, or nearly, for the first iterations of the schedule.

Our runs see the full model lose to a unified one; if that loss comes from the sub-models'
pull early in training, a warm-up removes it while keeping the late compatibility training.
The factor multiplies whole compatible tasks (compatible loss and distillation), on top of
SFSC.COMPAT_WEIGHT.
"""
from __future__ import annotations

import math
from typing import Optional

__all__ = ["CompatWarmup"]


class CompatWarmup:
    """factor(iteration) = START + (1 − START) · min(1, iteration / ITERS)."""

    def __init__(self, iters: int, start_factor: float):
        self.iters = int(iters)
        self.start_factor = float(start_factor)

    @classmethod
    def from_config(cls, cfg) -> Optional[CompatWarmup]:
        """None when SFSC.COMPAT_WARMUP.ITERS is 0; a key that cannot work raises ValueError."""
        w = cfg.SFSC.COMPAT_WARMUP
        if int(w.ITERS) != w.ITERS or w.ITERS < 0:
            raise ValueError(f"SFSC.COMPAT_WARMUP.ITERS must be an integer >= 0 (0: off), got "
                             f"{w.ITERS}")
        if not (math.isfinite(w.START_FACTOR) and 0 <= w.START_FACTOR <= 1):
            raise ValueError(f"SFSC.COMPAT_WARMUP.START_FACTOR must be in [0, 1] (0: the full "
                             f"model alone at iteration 0), got {w.START_FACTOR}")
        if w.ITERS == 0:
            return None
        if cfg.SFSC.COMPAT_LOSS == "none" or not cfg.SFSC.WIDTHS:
            raise ValueError("SFSC.COMPAT_WARMUP.ITERS > 0 ramps in the compatible tasks, but "
                             "there are none (SFSC.COMPAT_LOSS none or SFSC.WIDTHS empty)")
        return cls(w.ITERS, w.START_FACTOR)

    def factor(self, iteration: int) -> float:
        """The compatible tasks' weight at ``iteration`` (0-based): START at 0, 1 from ITERS."""
        return self.start_factor + (1.0 - self.start_factor) * min(1.0, iteration / self.iters)
