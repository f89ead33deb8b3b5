"""The evidential-loss variants compared when choosing SFSC's default (SFSC.EVIDENTIAL.*).

One place for the candidates, so the probe, the network runs and the report agree on what
each name means. The protocol is benchmarks/evidential_selection/PROTOCOL.md.
"""
from __future__ import annotations

from typing import Dict, List

__all__ = ["CANDIDATES", "config_overrides", "loss_kwargs"]

_PAPER = {"LAMBDA": 0.2, "ACTIVATION": "exp", "KL_TARGET": "kept", "KL_NORM": "sum",
          "PRIOR": 1.0}

CANDIDATES: Dict[str, Dict[str, object]] = {
    "paper": dict(_PAPER),  # the paper's literal Eq. 4 + 5
    "sensoy_sum": {**_PAPER, "KL_TARGET": "removed"},  # Sensoy's α̃: the earlier default
    "kl_mean": {**_PAPER, "KL_TARGET": "removed", "KL_NORM": "mean"},
    "kl_batch": {**_PAPER, "KL_TARGET": "removed", "KL_NORM": "batch"},
    "softplus_mean": {**_PAPER, "KL_TARGET": "removed", "KL_NORM": "mean",
                      "ACTIVATION": "softplus"},
    "redl_mean": {**_PAPER, "KL_TARGET": "removed", "KL_NORM": "mean", "PRIOR": 0.1},
    "ace_only": {**_PAPER, "LAMBDA": 0.0, "KL_TARGET": "removed"},  # no KL at all (Re-EDL)
}


def loss_kwargs(name: str) -> Dict[str, object]:
    """Keyword arguments of ``evidential_loss`` for candidate ``name``."""
    c = CANDIDATES[name]
    return {"lam": c["LAMBDA"], "activation": c["ACTIVATION"], "kl_target": c["KL_TARGET"],
            "kl_norm": c["KL_NORM"], "prior": c["PRIOR"]}


def config_overrides(name: str) -> List[str]:
    """``SFSC.EVIDENTIAL.<KEY> value`` command-line overrides for candidate ``name``."""
    out: List[str] = []
    for key, value in CANDIDATES[name].items():
        out += [f"SFSC.EVIDENTIAL.{key}", str(value)]
    return out
