"""Speed and agreement of the compatibility evaluator against FastReID's ranking.

On features from :mod:`.synthetic_features`, each step runs in its own process
(:mod:`.eval_timing`, so that its peak memory is its own):

* ours: the full matrix with ``sfsc.evaluation.evaluate_compatibility``;
* FastReID: ``build_dist`` + ``evaluate_rank`` per (query, gallery) pair, with its Python
  ranker and/or its Cython ranker (compiled in a temporary folder, never in site-packages),
  optionally timed on a subset of queries and pairs and extrapolated linearly to the matrix.

FastReID ranks float32 distances with an unstable argsort, so where a positive and a negative
have the same distance its result depends on their arbitrary order; each cell's range over all
such orders is computed (untimed) from FastReID's own distance matrix, and a difference beyond
the tolerance is accepted only inside that range.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np

from . import eval_timing
from .eval_timing import METRICS, build_cython_ranker
from .synthetic_features import generate

__all__ = ["SCALES", "SpeedSettings", "compare", "plan_fastreid", "run_benchmark"]

# num_query, num_gallery, num_ids, num_cams, distractors (pid 0) in the gallery
SCALES: Dict[str, Dict[str, int]] = {
    "market": dict(num_query=3368, num_gallery=15913, num_ids=751, num_cams=6,
                   num_distractors=2793),
    "msmt": dict(num_query=11659, num_gallery=82161, num_ids=3060, num_cams=15,
                 num_distractors=0),
}


@dataclass
class SpeedSettings:
    """One benchmark: sizes (see SCALES), feature dimension, the models' widths, FastReID
    rankers to compare (python / cython), their subsets (0: all), evaluator options and the
    agreement tolerance in percent."""

    num_query: int
    num_gallery: int
    num_ids: int
    num_cams: int
    num_distractors: int
    dim: int = 512
    widths: Sequence[float] = (0.25, 0.5, 0.75, 1.0)
    unmatched_fraction: float = 0.005
    rankers: Sequence[str] = ("python", "cython")
    python_queries: int = 100
    fastreid_queries: int = 0
    fastreid_pairs: int = 0
    chunk_size: int = 1024
    backend: str = "auto"
    tolerance: float = 1e-4
    seed: int = 0
    scale: str = "custom"

    @property
    def sizes(self) -> Dict[str, int]:
        return {k: getattr(self, k) for k in ("num_query", "num_gallery", "num_ids",
                                              "num_cams", "num_distractors")}


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def compare(ours: dict, theirs: dict, tolerance: float) -> dict:
    """Largest |ours - FastReID| (%) per metric, and whether each cell agrees: within
    ``tolerance``, or both values inside the range FastReID's own result spans over the
    orders of its tied float32 distances (its argsort orders ties arbitrarily)."""
    diff = {m: 0.0 for m in METRICS}
    spread = {m: 0.0 for m in METRICS}
    beyond = within_ties = 0
    for key, cell in theirs.items():
        i, j = map(int, key.split(","))
        for m in METRICS:
            value, (worst, best) = ours[m][i][j], cell["ties"][m]
            diff[m] = max(diff[m], abs(value - cell[m]))
            spread[m] = max(spread[m], best - worst)
            if abs(value - cell[m]) > tolerance:
                beyond += 1
                within_ties += all(worst - tolerance <= v <= best + tolerance
                                   for v in (value, cell[m]))
    return {"max_abs_diff_percent": diff, "max_tie_spread_percent": spread,
            "values_beyond_tolerance": beyond, "of_which_within_fastreid_ties": within_ties,
            "agree": beyond == within_ties}


def plan_fastreid(settings: SpeedSettings, ranker: str, num_pairs: int) -> dict:
    """Queries and pairs FastReID is timed on, or why it cannot run here."""
    num_query, num_gallery = settings.num_query, settings.num_gallery
    queries = settings.fastreid_queries if 0 < settings.fastreid_queries < num_query else num_query
    if ranker == "python" and 0 < settings.python_queries < queries:
        queries = settings.python_queries
    # build_dist's float32 (Q, G) matrix (twice while 1 - x is formed) + argsort's int64 one;
    # half the free memory at most, since the machine is shared.
    available = _available_bytes()
    full = {"full_scale_gib": round(num_query * num_gallery * 16 / 2**30, 2),
            "full_scale_fits": num_query * num_gallery * 16 <= available // 2}
    need = queries * num_gallery * 16
    if need > available // 2:
        return {"skipped": f"FastReID builds the full {queries}x{num_gallery} distance matrix "
                           f"and its argsort: about {need / 2**30:.1f} GiB, with "
                           f"{available / 2**30:.1f} GiB available on this machine. Not run; "
                           f"--fastreid-queries N times it on N queries and extrapolates.",
                **full}
    count = num_pairs if settings.fastreid_pairs <= 0 else min(settings.fastreid_pairs, num_pairs)
    picks = np.unique(np.linspace(0, num_pairs - 1, count).round().astype(int))
    return {"queries": int(queries), "pair_ids": picks.tolist(), **full}


def _run_child(task: dict) -> dict:
    """Run :func:`.eval_timing.run_child` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, "-m", eval_timing.__name__, json.dumps(task)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: live progress
    if proc.returncode != 0:
        raise RuntimeError(f"child {task['child']} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _log(msg: str) -> None:
    print(f"[bench_eval] {msg}", file=sys.stderr, flush=True)


def run_benchmark(settings: SpeedSettings, log: Callable[[str], None] = _log) -> dict:
    """The report (one JSON-able dict; ``report["agree"]``: every cell agreed)."""
    sizes = settings.sizes
    widths = [float(w) for w in settings.widths]
    rankers: List[str] = list(settings.rankers)
    if set(rankers) - {"python", "cython"}:
        raise ValueError(f"FastReID rankers are python and cython, got {rankers}")
    nq, ng = sizes["num_query"], sizes["num_gallery"]
    pairs = [(i, j) for i in range(len(widths)) for j in range(len(widths))]
    report = {"scale": settings.scale, **sizes,
              "dim": settings.dim, "widths": widths, "cells": len(pairs),
              "cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg())}
    workdir = tempfile.mkdtemp(prefix="sfsc-bench-")
    agree = True
    try:
        start = time.perf_counter()
        report.update(generate(workdir, **sizes, dim=settings.dim, widths=widths,
                               seed=settings.seed,
                               unmatched_fraction=settings.unmatched_fraction))
        log(f"generated {len(widths)} models, {nq} queries x {ng} gallery items "
            f"({time.perf_counter() - start:.1f} s)")
        plans = {r: plan_fastreid(settings, r, len(pairs)) for r in rankers}
        subsets = sorted({p["queries"] for p in plans.values() if p.get("queries", nq) < nq})
        rng = np.random.default_rng(settings.seed + 1)
        for n in subsets:
            np.save(os.path.join(workdir, f"subset_{n}.npy"), np.sort(rng.choice(nq, n, False)))
        log(f"ours: full {len(widths)}x{len(widths)} matrix")
        ours = _run_child({"child": "ours", "data": workdir, "chunk_size": settings.chunk_size,
                           "backend": settings.backend, "subsets": subsets})
        report["ours"] = {k: ours[k] for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
        report["ours"].update(chunk_size=settings.chunk_size, backend=settings.backend)
        report["mAP_range"] = [float(np.min(ours["matrix"]["mAP"])),
                               float(np.max(ours["matrix"]["mAP"]))]
        log(f"ours: {ours['seconds']:.2f} s, peak RSS {ours['peak_rss_mb']:.0f} MB")
        for ranker, plan in plans.items():
            key = f"fastreid_{ranker}"
            if "skipped" in plan:
                report[key] = plan
                log(f"{key}: {plan['skipped']}")
                continue
            cython_dir = ""
            if ranker == "cython":
                cython_dir, reason = build_cython_ranker(workdir)
                if not cython_dir:
                    report[key] = {"skipped": f"Cython ranker unavailable: {reason}"}
                    continue
            chosen = [pairs[i] for i in plan["pair_ids"]]
            log(f"{key}: {len(chosen)} pairs x {plan['queries']} queries")
            res = _run_child({"child": ranker, "data": workdir, "queries": plan["queries"],
                              "cython_dir": cython_dir, "pairs": chosen})
            ref = ours["matrix"] if plan["queries"] == nq else ours["subsets"][
                str(plan["queries"])]
            check = compare(ref, res["cells"], settings.tolerance)
            factor = len(pairs) / len(chosen) * nq / plan["queries"]
            agree &= check["agree"]
            report[key] = {"seconds": res["seconds"] * factor,
                           "measured_seconds": res["seconds"], "extrapolated": factor != 1,
                           "full_scale_gib": plan["full_scale_gib"],
                           "full_scale_fits": plan["full_scale_fits"],
                           "pairs_measured": len(chosen), "queries_measured": plan["queries"],
                           "peak_rss_mb": res["peak_rss_mb"],
                           "rss_before_mb": res["rss_before_mb"], **check}
            report[f"speedup_vs_{ranker}"] = res["seconds"] * factor / ours["seconds"]
            log(f"{key}: {res['seconds']:.2f} s measured, {res['seconds'] * factor:.1f} s for "
                f"the full matrix, max |diff| "
                f"{max(check['max_abs_diff_percent'].values()):.2e} %")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["tolerance_percent"] = settings.tolerance
    report["agree"] = agree
    report["loadavg_after"] = list(os.getloadavg())
    return report
