"""The methods the SFSC paper compares, as training runs of configs/<Dataset>/<method>_<net>.yml.

Every method is a config; what differs is how many runs it takes and how its matrix is formed:
- switchable (SFSC, BCT-S, Asymmetric-S, the two ablations, any other switchable config of the
  folder, e.g. a candidate method): one run; its own widths' matrix;
- per width (Unified Model): one plain model per width, scored as a set of models;
- one-to-one (BCT, Asymmetric): one model per sub-width against the frozen unified full model,
  scored as a set together with that full model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from ...config_checks import ConfigError

__all__ = ["Run", "Method", "METHODS", "ABLATION", "benchmark_runs", "matrix_members",
           "method_named", "resolve_methods", "runs_for", "unified_run_name"]


@dataclass(frozen=True)
class Run:
    """One training run: a config file plus KEY VALUE overrides."""

    name: str
    config: str  # file name under configs/<Dataset>/
    overrides: Tuple[str, ...] = ()
    needs: Tuple[str, ...] = ()  # runs that must finish first
    cost: float = 1.0  # relative compute, for the ETA: Σ over trained widths of width²


@dataclass(frozen=True)
class Method:
    key: str
    title: str  # as in the paper's tables
    config: str  # file name stem, e.g. "sfsc" -> sfsc_R18.yml
    kind: str  # switchable | per_width | one_to_one
    notes: str = field(default="", compare=False)


METHODS: Dict[str, Method] = {m.key: m for m in (
    Method("unified", "Unified Model", "unified", "per_width"),
    Method("bct", "BCT", "bct", "one_to_one"),
    Method("asymmetric", "Asymmetric", "asymmetric", "one_to_one"),
    Method("bct_s", "BCT-S", "bct_s", "switchable"),
    Method("asymmetric_s", "Asymmetric-S", "asymmetric_s", "switchable"),
    Method("sfsc", "SFSC", "sfsc", "switchable"),
    Method("sfsc_paper", "SFSC (loss as printed)", "sfsc_paper", "switchable"),
    Method("sfsc_wo_loss", "w/o our loss", "sfsc_wo_loss", "switchable"),
    Method("sfsc_wo_aggregation", "w/o our aggregation", "sfsc_wo_aggregation", "switchable"),
)}

def resolve_methods(keys: Sequence[str], config_dir: str, net: str = "R18") -> List[Method]:
    """The methods named by ``keys``: the paper's (:data:`METHODS`), or any other config
    ``<key>_<net>.yml`` in ``config_dir``, trained as one switchable run (a candidate method);
    :data:`METHODS` itself is left as it is. ConfigError for a key that is neither."""
    for key in keys:
        if key not in METHODS and not os.path.isfile(os.path.join(config_dir,
                                                                  f"{key}_{net}.yml")):
            raise ConfigError(f"{key!r} is not one of the paper's methods "
                              f"({', '.join(METHODS)}) and {config_dir} has no "
                              f"{key}_{net}.yml to train as a switchable method.")
    return [method_named(key) for key in keys]


def method_named(key: str) -> Method:
    """The paper's method ``key``, else a candidate: a config stem trained as one switchable
    run, titled by its stem."""
    return METHODS.get(key) or Method(key, key, key, "switchable")


#: Rows of the paper's ablation table (Table 6).
ABLATION = ("unified", "sfsc_wo_loss", "sfsc_wo_aggregation", "sfsc")


def _width(w: float) -> str:
    return repr(float(w))  # "1.0", not "1": YACS refuses an int for a float key


def _width_list(widths: Sequence[float]) -> str:
    return "[" + ",".join(_width(w) for w in widths) + "]"


def unified_run_name(width: float) -> str:
    return f"unified_w{width:g}"


def runs_for(method: Method, widths: Sequence[float], net: str = "R18") -> List[Run]:
    """The runs of ``method`` for sub-model widths ``widths`` (the full width 1.0 is implied)."""
    config = f"{method.config}_{net}.yml"
    sub = tuple(sorted(widths))
    if method.kind == "switchable":
        return [Run(method.key, config, ("SFSC.WIDTHS", _width_list(sub)),
                    cost=1.0 + sum(w * w for w in sub))]
    if method.kind == "per_width":
        return [Run(unified_run_name(w), config, ("SFSC.TRAIN_WIDTH", _width(w)), cost=w * w)
                for w in sub + (1.0,)]
    if method.kind == "one_to_one":
        full = unified_run_name(1.0)
        old_forward = 1.0 / 3 if method.key == "asymmetric" else 0.0  # frozen teacher features
        return [Run(f"{method.key}_w{w:g}", config,
                    ("SFSC.TRAIN_WIDTH", _width(w), "SFSC.WIDTHS", _width_list([w]),
                     "SFSC.OLD_MODEL.WEIGHTS", f"{{{full}}}/model_final.pth"),
                    needs=(full,), cost=w * w + old_forward)
                for w in sub]
    raise ValueError(f"unknown method kind {method.kind!r}")


def benchmark_runs(methods: Sequence[Method], widths: Sequence[float],
                   net: str = "R18") -> List[Run]:
    """Every run of ``methods``, each once, dependencies first: the one-to-one methods' frozen
    old model (the unified full model) trains before them even when "unified" is not asked."""
    runs: Dict[str, Run] = {}
    if any(m.kind == "one_to_one" for m in methods):
        full = unified_run_name(1.0)
        runs[full] = next(r for r in runs_for(METHODS["unified"], widths, net) if r.name == full)
    for method in methods:
        runs.update((run.name, run) for run in runs_for(method, widths, net))
    return list(runs.values())


def matrix_members(method: Method, widths: Sequence[float]) -> List[Tuple[float, str, float]]:
    """(label, run name, width) of the models a per-width / one-to-one method's matrix spans."""
    sub = sorted(widths)
    if method.kind == "per_width":
        return [(w, unified_run_name(w), w) for w in sub + [1.0]]
    if method.kind == "one_to_one":
        return [(w, f"{method.key}_w{w:g}", w) for w in sub] + [(1.0, unified_run_name(1.0), 1.0)]
    raise ValueError(f"{method.key} is scored from its own run")
