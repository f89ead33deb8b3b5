"""The timed work of the evaluation benchmark, each step in a process of its own so that its
peak memory (ru_maxrss) is its own: ``python -m sfsc.benchmark.speed.eval_timing TASK`` runs one.

* ours: the full matrix with ``sfsc.evaluation.evaluate_compatibility``;
* FastReID: ``build_dist`` + ``evaluate_rank`` per (query, gallery) pair with its Python or its
  Cython ranker (compiled in a temporary folder, never in site-packages), and each cell's range
  over every order of FastReID's tied float32 distances (untimed).
"""
from __future__ import annotations

import glob
import importlib.util
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

from ...evaluation import MatchIndex, evaluate_compatibility
from ...evaluation.ranking import QueryRanks, rank_positives, summarize
from .synthetic_features import load_features

__all__ = ["METRICS", "build_cython_ranker", "child_fastreid", "child_ours", "run_child"]

METRICS = ("mAP", "R1", "R5", "R10", "mINP")
_CYTHON_SETUP = """
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
ext = Extension("rank_cy", ["rank_cy.pyx"], include_dirs=[np.get_include()])
setup(name="rank_cy", ext_modules=cythonize([ext], quiet=True),
      script_args=["build_ext", "--inplace", "--build-temp", "build"])
"""


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(folder: str, chunk_size: int, backend: str, subsets) -> dict:
    """Time our full matrix (and score the query subsets FastReID is timed on, untimed)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[bench_eval ours] %(message)s")

    widths, feats, qp, qc, gp, gc = load_features(folder)
    before = _rss_mb()
    start = time.perf_counter()
    result = evaluate_compatibility({w: f[0] for w, f in zip(widths, feats)},
                                    {w: f[1] for w, f in zip(widths, feats)}, qp, qc, gp, gc,
                                    chunk_size=chunk_size, backend=backend)
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "peak_rss_mb": _rss_mb(), "rss_before_mb": before,
           "matrix": {m: result.metrics[m].tolist() for m in METRICS},
           "num_valid": result.num_valid, "subsets": {}}
    for n in subsets:  # untimed: the same query subsets FastReID is timed on
        idx = np.load(os.path.join(folder, f"subset_{n}.npy"))
        sub = evaluate_compatibility({w: f[0][idx] for w, f in zip(widths, feats)},
                                     {w: f[1] for w, f in zip(widths, feats)}, qp[idx], qc[idx],
                                     gp, gc, chunk_size=chunk_size, backend=backend)
        out["subsets"][str(n)] = {m: sub.metrics[m].tolist() for m in METRICS}
    return out


def _tie_bounds(dist: np.ndarray, matches) -> dict:
    """Each metric's [worst, best] value over every order of ``dist``'s tied entries."""
    bounds = {m: [] for m in METRICS}
    for ties in ("pessimistic", "optimistic"):
        ranks = QueryRanks.empty(len(dist))
        for s in range(0, len(dist), 1024):
            e = min(len(dist), s + 1024)
            ranks.ap[s:e], ranks.first_rank[s:e], ranks.inp[s:e] = rank_positives(
                -dist[s:e], *matches.chunk(s, e), ties=ties)
        for m, v in summarize(ranks, matches).as_dict().items():
            bounds[m].append(v)
    return bounds


def _load_rank_cy(cython_dir: str):
    path = glob.glob(os.path.join(cython_dir, "rank_cy*.so"))[0]
    spec = importlib.util.spec_from_file_location("rank_cy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_fastreid(folder: str, ranker: str, queries: int, pairs, cython_dir: str) -> dict:
    """Time FastReID's build_dist + evaluate_rank on ``pairs`` (and their tie ranges, untimed)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Cython rank evaluation")  # before it is issued
    from fastreid.evaluation import rank
    from fastreid.utils.compute_dist import build_dist

    if ranker == "cython":
        rank.evaluate_cy, rank.IS_CYTHON_AVAI = _load_rank_cy(cython_dir).evaluate_cy, True
    widths, feats, qp, qc, gp, gc = load_features(folder)
    idx = (np.load(os.path.join(folder, f"subset_{queries}.npy")) if queries < len(qp)
           else np.arange(len(qp)))
    matches = MatchIndex.build(qp[idx], qc[idx], gp, gc)
    before, seconds, cells = _rss_mb(), 0.0, {}
    for i, j in pairs:
        q, g = torch.from_numpy(feats[i][0][idx]), torch.from_numpy(feats[j][1])
        start = time.perf_counter()
        dist = build_dist(q, g, "cosine")
        cmc, all_ap, all_inp = rank.evaluate_rank(dist, qp[idx], gp, qc[idx], gc,
                                                  use_cython=ranker == "cython")
        seconds += time.perf_counter() - start
        values = (np.mean(all_ap) * 100, cmc[0] * 100, cmc[4] * 100, cmc[9] * 100,
                  np.mean(all_inp) * 100)
        cells[f"{i},{j}"] = {m: float(v) for m, v in zip(METRICS, values)}
        cells[f"{i},{j}"]["ties"] = _tie_bounds(dist, matches)  # untimed
        del dist
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "rss_before_mb": before,
            "cells": cells}


def build_cython_ranker(workdir: str):
    """Compile FastReID's rank_cy.pyx in ``workdir``; returns (folder or None, reason)."""
    spec = importlib.util.find_spec("fastreid")
    if spec is None or not spec.submodule_search_locations:
        return None, "fastreid is not installed"
    pyx = os.path.join(list(spec.submodule_search_locations)[0], "evaluation", "rank_cylib",
                       "rank_cy.pyx")
    if not os.path.exists(pyx):
        return None, f"{pyx} not found"
    folder = os.path.join(workdir, "rank_cylib")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(pyx, folder)
    proc = subprocess.run([sys.executable, "-c", _CYTHON_SETUP], cwd=folder, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not glob.glob(os.path.join(folder, "rank_cy*.so")):
        return None, "compilation failed: " + proc.stdout.strip().splitlines()[-1][:300]
    return folder, ""


def run_child(task: dict) -> dict:
    """The work of one child process, ``task`` as ``eval_speed._run_child`` passes it."""
    if task["child"] == "ours":
        return child_ours(task["data"], task["chunk_size"], task["backend"], task["subsets"])
    return child_fastreid(task["data"], task["child"], task["queries"],
                          [tuple(p) for p in task["pairs"]], task["cython_dir"])


if __name__ == "__main__":  # a child process of eval_speed.run_benchmark
    print(json.dumps(run_child(json.loads(sys.argv[1]))))
