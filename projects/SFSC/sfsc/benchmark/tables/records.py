"""Committed run records: what a finished benchmark run leaves in git so that another machine
reuses it instead of training again.

A record is one JSON file per run, ``<records dir>/seed<k>/<run>.json``. Besides what names the
run (config file, overrides, seed, commit, wall time, command) it holds:

- ``effective_config``: the run's merged config flattened to ``{"KEY.SUB": value}``, without
  ``OUTPUT_DIR`` and with the frozen old model's path left as ``{<run>}/model_final.pth``; the
  effective configs of the runs it needs are included under ``<run>:KEY.SUB`` keys, since a
  different old model is a different experiment;
- ``config_files``: sha256 of the config file and its ``_BASE_`` files (for information);
- ``compatibility``: the run's compatibility.json, and ``final_metrics`` (the widest model
  against itself);
- ``curves``: the per-iteration scalars of metrics.json, thinned to ``MAX_POINTS`` iterations.

The effective config also holds the run's inputs by content, device and precision, and the
fingerprint of the training code (``numerics``: the numbers of a short reference computation,
:mod:`sfsc.engine.numerics`), see :mod:`.run_inputs`; the paths that name inputs are locations
and are not compared.

A record matches a run when run name and seed are equal and every effective config entry is
equal, the fingerprint within its tolerance. An entry only the current code has matches only
what the record meant without it: :data:`LEGACY` holds, for each key added after records were
kept, the value that reproduces the behaviour before the key existed (not today's default,
which may be another behaviour); a key missing from both the record and LEGACY never matches
(a dataset entry included: a record that does not say which data it was trained on matches no
generated dataset), nor does an entry only the record has. The git commit is not compared:
code changes that leave the config and the fingerprint alone reuse the run.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional

from fastreid.config import CfgNode, get_cfg

from ...config import add_sfsc_config
from ...engine.numerics import differences
from ...engine.trainer import training_precision
from .run_inputs import LOCATION_KEYS, NUMERICS

__all__ = ["LEGACY", "MAX_POINTS", "config_differences", "config_file_hashes",
           "curves_to_series", "default_config", "flatten", "is_numerics", "legacy_value",
           "read_curves", "read_record", "record_fingerprint", "thin_curves", "write_record"]

MAX_POINTS = 250
# Machine-dependent timings: not needed to redraw the curves.
_SKIPPED_SCALARS = ("time", "data_time", "eta_seconds")


def flatten(cfg: CfgNode, prefix: str = "") -> Dict[str, Any]:
    """``{"MODEL.BACKBONE.DEPTH": "18x", ...}``, tuples as lists (JSON's view of them)."""
    out: Dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, CfgNode):
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.loads(json.dumps(value))
    return out


def default_config() -> Dict[str, Any]:
    """FastReID's defaults plus the SFSC keys, flattened."""
    cfg = get_cfg()
    add_sfsc_config(cfg)
    return flatten(cfg)


Recorded = Callable[[str], Any]  # a record's entry by key (KeyError if absent)


def _legacy_precision(entry: Recorded) -> str:
    # Every record before the entry trained on the CPU, where float16 AMP runs in fp32.
    return training_precision(entry("SOLVER.AMP.ENABLED"), entry("SOLVER.AMP.DTYPE"), "cpu")


#: What an entry a record lacks meant when it was written: the value (or a function of the
#: record's entries) that reproduces the behaviour before the entry existed.
LEGACY: Dict[str, Any] = {
    "MODEL.BACKBONE.GROUP_SLICING": "leading",  # the slicing before per-group existed
    "SFSC.EVIDENTIAL.KL_NORM": "sum",  # the KL was summed over classes before the choice
    # Off (distillation, warm-up), or read only by torchjd weightings no record before used.
    "SFSC.DISTILL.WEIGHT": 0.0,
    "SFSC.DISTILL.TEMPERATURE": 4.0,
    "SFSC.COMPAT_WARMUP.ITERS": 0,
    "SFSC.COMPAT_WARMUP.START_FACTOR": 0.0,
    "SFSC.WEIGHTING.CAGRAD_C": 0.4,
    "SFSC.WEIGHTING.FAIRGRAD_ALPHA": 1.0,
    "SFSC.WEIGHTING.PCD_TAU": 0.02,
    "SFSC.WEIGHTING.EMA": 0.0,
    "device": "cpu",  # no record before the entry trained on a GPU
    "precision": _legacy_precision,
}


def legacy_value(key: str, recorded: Dict[str, Any]) -> Any:
    """What entry ``key`` meant in ``recorded``, a record without it; KeyError if unknown.

    ``need:KEY`` (a run this one needs) is looked up as KEY among that run's entries.
    """
    prefix, _, name = key.rpartition(":")
    prefix = prefix + ":" if prefix else ""

    def entry(sub: str) -> Any:
        return recorded[prefix + sub]

    value = LEGACY[name]
    return value(entry) if callable(value) else value


def _location(key: str) -> bool:
    return key.rpartition(":")[2] in LOCATION_KEYS


def is_numerics(key: str) -> bool:
    """Whether ``key`` is a training-numerics fingerprint (the run's or a run it needs)."""
    return key.rpartition(":")[2] == NUMERICS


def _numerics_difference(key: str, recorded: Dict[str, float], current: Dict[str, float]
                         ) -> Optional[str]:
    rows = differences(recorded, current)
    if not rows:
        return None
    more = f", and {len(rows) - 3} more" if len(rows) > 3 else ""
    return f"{key}: trained by other training code ({'; '.join(rows[:3])}{more})"


def config_differences(recorded: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """The entries that keep a record from matching, as ``KEY: recorded -> current`` lines.

    Training-numerics fingerprints match within their tolerance (:mod:`sfsc.engine.numerics`).
    """
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        if _location(key):
            continue
        if key in recorded and key in current and is_numerics(key):
            why = _numerics_difference(key, recorded[key], current[key])
            if why:
                diffs.append(why)
        elif key in recorded and key in current:
            if recorded[key] != current[key]:
                diffs.append(f"{key}: {recorded[key]!r} -> {current[key]!r}")
        elif key in current and is_numerics(key):
            diffs.append(f"{key}: not in the record (trained before records carried the "
                         "training-numerics fingerprint)")
        elif key in current:
            try:
                meant = legacy_value(key, recorded)
            except KeyError:
                diffs.append(f"{key}: (not in the record) -> {current[key]!r}")
                continue
            if current[key] != meant:
                diffs.append(f"{key}: (not in the record, meaning {meant!r}) -> "
                             f"{current[key]!r}")
        else:
            diffs.append(f"{key}: {recorded[key]!r} -> (no such key now)")
    return diffs


def record_fingerprint(run: str, seed: int, effective: Dict[str, Any]) -> str:
    """16 hex digits of sha256 over run name, seed and effective config."""
    text = json.dumps({"run": run, "seed": seed, "config": effective}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_file_hashes(path: str, repo: str) -> Dict[str, str]:
    """sha256 of ``path`` and every ``_BASE_`` file it builds on, keyed by repo-relative path."""
    import yaml

    out: Dict[str, str] = {}
    while path:
        with open(path, "rb") as f:
            text = f.read()
        out[os.path.relpath(path, repo)] = hashlib.sha256(text).hexdigest()
        base = (yaml.safe_load(text) or {}).get("_BASE_")
        path = os.path.join(os.path.dirname(path), base) if base else ""
    return out


def _round(value: float) -> Optional[float]:
    # 6 significant digits are plenty for a curve; NaN / inf are not JSON, so they are gaps.
    return float(f"{value:.6g}") if math.isfinite(value) else None


def read_curves(metrics_path: str, max_points: int = MAX_POINTS) -> Optional[dict]:
    """metrics.json -> ``{"iterations": [...], "series": {key: [value or null]}}``, thinned.

    None when the file does not exist. A resumed run logs some iterations twice: the last
    entry of an iteration wins, as FastReID's own readers take it.
    """
    if not os.path.isfile(metrics_path):
        return None
    rows: Dict[int, Dict[str, float]] = {}
    with open(metrics_path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or "iteration" not in entry:
                continue
            rows.setdefault(int(entry["iteration"]), {}).update(
                (k, float(v)) for k, v in entry.items()
                if k != "iteration" and k not in _SKIPPED_SCALARS
                and isinstance(v, (int, float)) and not isinstance(v, bool))
    return thin_curves(rows, max_points)


def thin_curves(rows: Dict[int, Dict[str, float]], max_points: int = MAX_POINTS) -> dict:
    """Columns of ``rows`` ({iteration: {key: value}}) at most ``max_points`` iterations,
    evenly spread, the first and the last always kept."""
    iterations = sorted(rows)
    if len(iterations) > max_points:
        step = (len(iterations) - 1) / (max_points - 1)
        iterations = [iterations[round(i * step)] for i in range(max_points)]
    keys = sorted({k for it in iterations for k in rows[it]})
    return {"iterations": iterations,
            "series": {k: [_round(rows[it][k]) if k in rows[it] else None for it in iterations]
                       for k in keys}}


def curves_to_series(curves: dict) -> Dict[str, list]:
    """A record's curves as :func:`sfsc.benchmark.tables.curves.read_metrics` returns them."""
    return {key: [(it, v) for it, v in zip(curves["iterations"], values) if v is not None]
            for key, values in curves["series"].items()}


def _format(value: Any, indent: int = 0) -> str:
    # Nested containers one entry a line, flat lists on one line: a record's curves and
    # matrices stay readable in a diff without one line per number.
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {_format(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + _format(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value)


def write_record(path: str, record: Dict[str, Any]) -> None:
    """Write ``record`` as JSON to ``path`` (folders created), replacing it atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(_format(record) + "\n")
    os.replace(tmp, path)


def read_record(path: str) -> Optional[Dict[str, Any]]:
    """The record at ``path``, or None when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
