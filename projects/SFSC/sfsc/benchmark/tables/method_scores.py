"""Scores of switchable methods for choosing among them (benchmarks/method_search/PROTOCOL.md).

A run's score S is the mean over widths γ of M(φ_γ, φ) mAP (%): queries of width γ against
the full model's gallery (a per-width method: each model against its own gallery, the
diagonal). The rules compare a candidate with SFSC seed by seed and against the pooled seed
spread √((s²_a + s²_b) / 2), s the sample sd (ddof 1) over seeds.
"""
from __future__ import annotations

import functools
import math
from typing import Dict, List, Sequence

import numpy as np

from .methods import method_named

__all__ = ["cross_row", "score", "pooled_sd", "rank_screen", "selection_verdict",
           "confirmation_verdict"]

Results = Dict  # a benchmark's results.json
TIE = 0.01  # scores this close (mAP points) are ranked by the full model's M(φ_1, φ)


def cross_row(results: Results, method: str, seed: int) -> List[float]:
    """M(φ_γ, φ) mAP (%) of ``method`` at ``seed``, γ ascending (per-width: the diagonal)."""
    entry = results["methods"][method]
    matrix = np.asarray(entry["mAP"]["per_seed"][entry["seeds"].index(seed)])
    per_width = method_named(method).kind == "per_width"
    return [float(v) for v in (np.diag(matrix) if per_width else matrix[:, -1])]


def score(results: Results, method: str, seed: int) -> float:
    """S: the mean of :func:`cross_row`."""
    return float(np.mean(cross_row(results, method, seed)))


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """√((s²_a + s²_b) / 2), s the sample sd (ddof 1); 0 with fewer than two values."""
    def var(x):
        return float(np.var(x, ddof=1)) if len(x) > 1 else 0.0
    return math.sqrt((var(a) + var(b)) / 2)


def rank_screen(results: Results, candidates: Sequence[str], seed: int = 0,
                keep: int = 3) -> List[Dict]:
    """Stage 1: every candidate's S at ``seed``, best first (ties within 0.01 broken by the
    higher M(φ_1, φ)); ``chosen`` marks the best ``keep``."""
    rows = [{"method": m, "S": score(results, m, seed), "row": cross_row(results, m, seed)}
            for m in candidates]

    def before(a: Dict, b: Dict) -> int:
        # A distance, not a rounding: S = 62.504 and 62.506 tie though they round apart.
        if abs(a["S"] - b["S"]) > TIE:
            return -1 if a["S"] > b["S"] else 1
        return -1 if a["row"][-1] > b["row"][-1] else 1 if a["row"][-1] < b["row"][-1] else 0

    rows.sort(key=functools.cmp_to_key(before))
    for i, row in enumerate(rows):
        row["chosen"] = i < keep
    return rows


def selection_verdict(results: Results, candidate: str, reference: str = "sfsc",
                      unified: str = "unified", seeds: Sequence[int] = (0, 1, 2)) -> Dict:
    """Stage 2, rules 1-3: the candidate against ``reference`` and the unified full model."""
    s_c = [score(results, candidate, k) for k in seeds]
    s_r = [score(results, reference, k) for k in seeds]
    d = [a - b for a, b in zip(s_c, s_r)]
    sd = pooled_sd(s_c, s_r)
    rule1 = float(np.mean(d)) > sd and all(x > 0 for x in d)
    rows_c = np.array([cross_row(results, candidate, k) for k in seeds])
    rows_r = np.array([cross_row(results, reference, k) for k in seeds])
    cells = []
    for j in range(rows_c.shape[1]):
        gap = float(rows_c[:, j].mean() - rows_r[:, j].mean())
        cells.append({"gap": gap, "pooled_sd": pooled_sd(rows_c[:, j], rows_r[:, j])})
    rule2 = all(c["gap"] >= -c["pooled_sd"] for c in cells)
    full_unified = float(np.mean([cross_row(results, unified, k)[-1] for k in seeds]))
    rule3 = float(rows_c[:, -1].mean()) >= full_unified - 1.0
    return {"candidate": candidate, "S": s_c, "S_reference": s_r, "d": d, "pooled_sd": sd,
            "cells": cells, "full": float(rows_c[:, -1].mean()), "full_unified": full_unified,
            "rule1": rule1, "rule2": rule2, "rule3": rule3}


def confirmation_verdict(results: Results, candidate: str, reference: str = "sfsc",
                         seeds: Sequence[int] = (3, 4)) -> Dict:
    """Stage 3: the candidate wins only if its S beats the reference's on every seed."""
    d = [score(results, candidate, k) - score(results, reference, k) for k in seeds]
    return {"candidate": candidate, "d": d, "wins": all(x > 0 for x in d)}
