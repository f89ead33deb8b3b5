"""Gradient aggregation strategies: how T per-task gradients become one update.

Each strategy maps the T×T Gram matrix of the task gradients G (T×P) to coefficients c (T,)
and the update direction is cᵀG. Working in Gram space is exact for PCGrad, because every
projected gradient stays a linear combination of the original ones: the whole projection costs
O(T³) scalar work plus one Gram matrix and one T×P product, a small fraction of a step even
for ResNet-50. Strategies are small classes selected by name (SFSC.AGGREGATION), as in LibMTL:
``sum``, ``pcgrad`` and, through one adapter, torchjd's Gramian weightings (mgda, imtl_g,
upgrad, ...: torchjd_weightings.py), whose weights are rescaled to sum to T.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import numpy as np
import torch

from .torchjd_weightings import (
    WEIGHTINGS,
    build_weighting,
    load_weighting_state,
    weighting_state,
)

__all__ = ["Aggregation", "SumAggregation", "PCGradAggregation", "GramianWeightingAggregation",
           "AGGREGATIONS", "build_aggregation", "gram_matrix", "rescale_to_task_count"]

# Columns of G converted to float64 at a time: 2^16 × T float64 values (2.6 MB for T = 5, so a
# chunk stays in cache), where a float64 copy of the whole G would be 440 MB for ResNet-18
# (P ≈ 11M). For ResNet-18 on one CPU thread this costs 63 ms per step against 41 ms for the
# float32 product; on a GPU, 170 small kernels.
GRAM_CHUNK = 1 << 16


def gram_matrix(grads: torch.Tensor, chunk: int = GRAM_CHUNK) -> torch.Tensor:
    """grads (T, P) float32 -> G Gᵀ (T, T) float64, accumulated in float64 over column chunks.

    A float32 Gram matrix is not enough for the conflict test g_a·g_b < 0: over millions of
    parameters its rounding error (relative 1e-4 at P = 2M) exceeds the dot product of
    near-orthogonal gradients and flips its sign. Products of float32 values are exact in
    float64, so only the float64 summation rounds.
    """
    t, p = grads.shape
    gram = torch.zeros(t, t, dtype=torch.float64, device=grads.device)
    for start in range(0, p, chunk):
        block = grads[:, start:start + chunk].double()
        gram.addmm_(block, block.t())
    return gram


class Aggregation:
    """Base class: ``coefficients(gram) -> c`` with update = Σ_t c_t g_t.

    ``last_coefficients``: c (T,) float64 of the last call, the task weights the step logs."""

    name = ""
    last_coefficients: Optional[torch.Tensor] = None

    @classmethod
    def from_config(cls, cfg, seed: int = 0) -> Aggregation:
        """The strategy with its SFSC.* keys; ``seed`` seeds any randomness it has."""
        return cls()

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        """gram (T, T) float64 -> c (T,) float64."""
        raise NotImplementedError

    def __call__(self, grads: torch.Tensor, gram: Optional[torch.Tensor] = None,
                 out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """grads (T, P) -> aggregated gradient (P,), written into ``out`` if given.

        ``gram``: G Gᵀ (T, T), float64 from :func:`gram_matrix` unless given."""
        if gram is None:
            gram = gram_matrix(grads)
        self.last_coefficients = self.coefficients(gram.double())
        coef = self.last_coefficients.to(device=grads.device, dtype=grads.dtype)
        if out is None:
            return coef @ grads
        torch.mm(coef[None], grads, out=out.view(1, -1))
        return out


class SumAggregation(Aggregation):
    """θ ← θ − lr·Σ_t g_t (what one backward of the summed loss gives)."""

    name = "sum"

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        return torch.ones(gram.shape[0], dtype=gram.dtype)


class PCGradAggregation(Aggregation):
    """SFSC's Algorithm 1 (PCGrad, Yu et al. 2020).

    For each g_a, visit the *other* gradients in a fresh random order; when the current g_a
    conflicts with an original g_b (g_a·g_b < 0), remove its component along g_b:
    g_a ← g_a − (g_a·g_b / (‖g_b‖² + ε)) g_b. The update is the sum of the projected g_a.
    """

    name = "pcgrad"

    def __init__(self, eps: float = 1e-12, seed: int = 0):
        self.eps = eps
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_config(cls, cfg, seed: int = 0) -> PCGradAggregation:
        return cls(cfg.SFSC.PCGRAD.EPS, seed)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.cpu().numpy()
        t = g.shape[0]
        coef = np.eye(t)  # row a: projected g_a as a combination of the original gradients
        for a in range(t):
            others = np.array([b for b in range(t) if b != a], dtype=np.int64)
            for b in self.rng.permutation(others):
                dot = coef[a] @ g[:, b]
                if dot < 0:
                    coef[a, b] -= dot / (g[b, b] + self.eps)
        return torch.from_numpy(coef.sum(axis=0))

    def state_dict(self) -> Dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def rescale_to_task_count(weights: torch.Tensor) -> torch.Tensor:
    """weights (T,) -> T·w / Σw, summing to T as ``sum``'s coefficients do; zeros when Σw <= 0
    (no common direction was found: the step leaves the task gradients out)."""
    total = float(weights.sum())
    if not total > 0:
        return torch.zeros_like(weights)
    return weights * (weights.shape[0] / total)


class GramianWeightingAggregation(Aggregation):
    """One of torchjd's Gramian weightings (``name`` in torchjd_weightings.WEIGHTINGS).

    Scale rule: the weights w are rescaled to c = T·w / Σw, so that the coefficients sum to T as
    ``sum``'s do. A weighting then decides how the step is shared among the tasks, not how long
    it is in total: its own weights sum to 1 for most (MGDA, IMTL-G, UPGrad), which alone would
    divide the learning rate by T, and to other values for others (Aligned-MTL, CAGrad).

    Randomness (GradVac's visiting orders) is drawn from torch's CPU generator with this
    aggregation's own generator state swapped in and out, seeded by ``seed``: it neither
    consumes nor moves the global stream, and it is checkpointed with the weighting's state
    (moving averages), so --resume continues exactly. In multi-process training every process
    computes the same weights: the Gram matrix comes from the all-reduced task gradients and the
    solvers are deterministic.
    """

    def __init__(self, name: str, weighting, seed: int = 0):
        self.name = name
        self.weighting = weighting
        self._rng = torch.Generator().manual_seed(seed).get_state()

    @classmethod
    def from_config(cls, cfg, seed: int = 0) -> GramianWeightingAggregation:
        name = cfg.SFSC.AGGREGATION
        return cls(name, build_weighting(name, cfg), seed)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        gram = gram.detach().to("cpu", torch.float64)  # T×T: the solvers run on the host
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng)
            weights = self.weighting(gram)
            self._rng = torch.get_rng_state()
        return rescale_to_task_count(weights.double())

    def state_dict(self) -> Dict:
        return {"weighting": self.name, "rng": self._rng.clone(),
                "state": weighting_state(self.weighting)}

    def load_state_dict(self, state: Dict) -> None:
        if state.get("weighting") != self.name:
            raise ValueError(f"the checkpoint's aggregation state is {state.get('weighting')!r}'s"
                             f", not {self.name!r}'s: resume with the SFSC.AGGREGATION it was "
                             "trained with")
        self._rng = state["rng"].clone()
        load_weighting_state(self.weighting, state["state"])


AGGREGATIONS: Dict[str, Type[Aggregation]] = {
    cls.name: cls for cls in (SumAggregation, PCGradAggregation)
}
AGGREGATIONS.update({name: GramianWeightingAggregation for name in WEIGHTINGS})


def build_aggregation(cfg, seed: int = 0) -> Aggregation:
    """The strategy named by SFSC.AGGREGATION; an unknown name, a bad SFSC.WEIGHTING key or a
    missing torchjd extra raises ValueError (here only)."""
    name = cfg.SFSC.AGGREGATION
    if name not in AGGREGATIONS:
        raise ValueError(f"SFSC.AGGREGATION {name!r} is not one of {sorted(AGGREGATIONS)}")
    return AGGREGATIONS[name].from_config(cfg, seed)

