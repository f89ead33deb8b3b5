"""torchjd's Gramian weightings by the names SFSC.AGGREGATION gives them.

A Gramian weighting (torchjd 0.18) maps the T×T Gram matrix of the task gradients to T
weights, which is what an :class:`~sfsc.engine.aggregation.Aggregation` computes: each one here
runs on the step's float64 Gram matrix, with no extra backward pass. Left out of torchjd's
list: ``Mean`` and ``Sum`` (the same update as ``sum`` once weights are rescaled to sum to T),
``PCGrad`` (the same weights as our ``pcgrad``, whose order generator is checkpointed),
``Constant`` (fixed weights: SFSC.COMPAT_WEIGHT), ``Krum`` (Byzantine-robust selection of one
gradient), and the weightings of the full T×P Jacobian (Nash-MTL, ExcessMTL, MoDo, SDMGrad,
Random), which the Gram matrix does not determine or which need the gradients themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch
from torchjd.aggregation import (
    AlignedMTLWeighting,
    CAGradWeighting,
    CRMOGMWeighting,
    DualProjWeighting,
    FairGradWeighting,
    GradVacWeighting,
    IMTLGWeighting,
    MGDAWeighting,
    PCDWeighting,
    UPGradWeighting,
    Weighting,
)

__all__ = ["TORCHJD_VERSION", "WEIGHTINGS", "WeightingSpec", "build_weighting",
           "load_weighting_state", "weighting_state"]

TORCHJD_VERSION = "0.18.0"  # setup.py's pin, for the install hint


@dataclass(frozen=True)
class WeightingSpec:
    """How to build one weighting from SFSC.WEIGHTING (``keys``: those it reads) and the
    torchjd extra that installs its solver ("": none)."""

    build: Callable[..., Weighting]
    extra: str = ""
    keys: Tuple[str, ...] = ()


WEIGHTINGS: Dict[str, WeightingSpec] = {
    "mgda": WeightingSpec(lambda w: MGDAWeighting()),  # Sener & Koltun 2018, Frank-Wolfe
    "imtl_g": WeightingSpec(lambda w: IMTLGWeighting()),  # Liu et al. 2021, gradient part
    "aligned_mtl": WeightingSpec(lambda w: AlignedMTLWeighting()),  # Senushkin et al. 2023
    "upgrad": WeightingSpec(lambda w: UPGradWeighting(), "quadprog-projector"),  # Quinton & Rey
    "dualproj": WeightingSpec(lambda w: DualProjWeighting(), "quadprog-projector"),  # GEM, 2017
    "cagrad": WeightingSpec(lambda w: CAGradWeighting(c=w.CAGRAD_C), "cagrad",
                            ("CAGRAD_C",)),  # Liu et al. 2021
    "fairgrad": WeightingSpec(lambda w: FairGradWeighting(alpha=w.FAIRGRAD_ALPHA), "fairgrad",
                              ("FAIRGRAD_ALPHA",)),  # Ban & Ji 2024
    "gradvac": WeightingSpec(lambda w: GradVacWeighting()),  # Wang et al. 2021, stateful
    # Priority-constrained descent (TMLR 2026): row 0, the full model's task, is the primary
    # objective; each compatible task is guaranteed a share PCD_TAU of its own progress. Stateful.
    "pcd": WeightingSpec(lambda w: PCDWeighting(tau=w.PCD_TAU), "", ("PCD_TAU",)),
}


def _check_keys(w) -> None:
    if not (math.isfinite(w.CAGRAD_C) and w.CAGRAD_C >= 0):
        raise ValueError(f"SFSC.WEIGHTING.CAGRAD_C must be a finite number >= 0, got "
                         f"{w.CAGRAD_C}")
    if not (math.isfinite(w.FAIRGRAD_ALPHA) and w.FAIRGRAD_ALPHA > 0):
        raise ValueError(f"SFSC.WEIGHTING.FAIRGRAD_ALPHA must be a finite number > 0, got "
                         f"{w.FAIRGRAD_ALPHA}")
    if not 0 <= w.PCD_TAU <= 1:
        raise ValueError(f"SFSC.WEIGHTING.PCD_TAU must be in [0, 1], got {w.PCD_TAU}")
    if not 0 <= w.EMA < 1:
        raise ValueError(f"SFSC.WEIGHTING.EMA must be in [0, 1) (0: no smoothing), got "
                         f"{w.EMA}")


def build_weighting(name: str, cfg) -> Weighting:
    """torchjd's weighting ``name`` with its SFSC.WEIGHTING keys, smoothed by CR-MOGM's moving
    average when SFSC.WEIGHTING.EMA > 0. A bad key or a missing extra raises ValueError."""
    keys = cfg.SFSC.WEIGHTING
    _check_keys(keys)
    spec = WEIGHTINGS[name]
    try:  # torchjd checks its optional solvers when a weighting is built
        weighting = spec.build(keys)
    except ImportError as e:
        raise ValueError(f"SFSC.AGGREGATION {name!r} needs torchjd's {spec.extra!r} extra "
                         f"({e}): pip install 'torchjd[{spec.extra}]=={TORCHJD_VERSION}'"
                         ) from None
    if keys.EMA > 0:
        weighting = CRMOGMWeighting(weighting, alpha=float(keys.EMA))
    return weighting


# torchjd keeps a stateful weighting's state in buffers (None before the first call, so not in
# nn.Module.state_dict()) and in a ``_state_key`` attribute; without the key, the next call
# takes the restored state for another problem size and starts afresh.
_STATE_ATTRIBUTES = ("_state_key",)


def weighting_state(weighting: Weighting) -> Dict[str, Dict]:
    """Every buffer (None included) and state key of ``weighting`` and the weightings it
    wraps, copied: ``{module path: {"buffers": {...}, "attributes": {...}}}``."""
    state = {}
    for path, module in weighting.named_modules():
        state[path] = {
            "buffers": {k: None if v is None else v.detach().clone()
                        for k, v in module._buffers.items()},
            "attributes": {k: getattr(module, k) for k in _STATE_ATTRIBUTES
                           if hasattr(module, k)}}
    return state


def load_weighting_state(weighting: Weighting, state: Dict[str, Dict]) -> None:
    """Put back what :func:`weighting_state` saved (a weighting of the same kind)."""
    modules = dict(weighting.named_modules())
    if set(modules) != set(state):
        raise ValueError(f"the saved weighting state holds modules {sorted(state)}, this "
                         f"weighting {sorted(modules)}")
    for path, saved in state.items():
        module = modules[path]
        for k, v in saved["buffers"].items():
            setattr(module, k, None if v is None else torch.as_tensor(v).clone())
        for k, v in saved["attributes"].items():
            setattr(module, k, v)
