#!/usr/bin/env python3
"""Benchmark the compatibility evaluator against FastReID's ranking on synthetic features.

    python tools/bench_eval.py --scale market [--fastreid python,cython|none]
    python tools/bench_eval.py --scale msmt --fastreid none
    python tools/bench_eval.py --num-query 500 --num-gallery 4000 --num-ids 200 --num-cams 4

Generates ReID-like features for several models (widths) at a named scale (identities seen by
several cameras, per-identity centres, per-camera shifts, per-image noise, distractors; each
model a different noisy linear view of the same images, so cells differ and mAP stays well
below 100), then runs, each in its own process so that peak memory (ru_maxrss) is its own:

* ours: the full matrix with ``sfsc.evaluation.evaluate_compatibility``;
* FastReID: ``build_dist`` + ``evaluate_rank`` per (query, gallery) pair, with its Python
  ranker and/or its Cython ranker (compiled in a temporary folder, never in site-packages).
  ``--python-queries`` / ``--fastreid-queries`` / ``--fastreid-pairs`` time it on a random
  subset of queries and pairs and extrapolate linearly to the full matrix (reported).

Checks that FastReID's metrics equal ours (same queries) within ``--tolerance`` percent.
FastReID ranks float32 distances with an unstable argsort, so where a positive and a negative
have the same distance its result depends on their arbitrary order; each cell's range over
all such orders is computed (untimed) from FastReID's own distance matrix, and a difference
beyond the tolerance is accepted only inside that range. The counts are reported. Prints ONE
JSON line on stdout (progress goes to stderr); exits 1 on disagreement.
"""
import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALES = {  # num_query, num_gallery, num_ids, num_cams, distractors (pid 0) in the gallery
    "market": dict(num_query=3368, num_gallery=15913, num_ids=751, num_cams=6,
                   num_distractors=2793),
    "msmt": dict(num_query=11659, num_gallery=82161, num_ids=3060, num_cams=15,
                 num_distractors=0),
}
METRICS = ("mAP", "R1", "R5", "R10", "mINP")
_CYTHON_SETUP = """
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
ext = Extension("rank_cy", ["rank_cy.pyx"], include_dirs=[np.get_include()])
setup(name="rank_cy", ext_modules=cythonize([ext], quiet=True),
      script_args=["build_ext", "--inplace", "--build-temp", "build"])
"""


def log(msg: str) -> None:
    print(f"[bench_eval] {msg}", file=sys.stderr, flush=True)


def generate(folder: str, num_query: int, num_gallery: int, num_ids: int, num_cams: int,
             num_distractors: int, dim: int, widths, seed: int,
             unmatched_fraction: float) -> dict:
    """Write ids.npz and q_<i>.npy / g_<i>.npy (float32) per model to ``folder``."""
    rng = np.random.default_rng(seed)
    # Queries: identities 1..num_ids, each seen by distinct cameras where possible.
    q_pids = np.sort(np.resize(rng.permutation(num_ids) + 1, num_query))
    q_cams = np.empty(num_query, np.int64)
    for pid in np.unique(q_pids):
        at = np.flatnonzero(q_pids == pid)
        q_cams[at] = np.resize(rng.permutation(num_cams), len(at))
    # Gallery: every identity under several cameras, plus distractors (pid 0, as in Market).
    labelled = num_gallery - num_distractors
    g_pids = np.concatenate([np.resize(rng.permutation(num_ids) + 1, labelled),
                             np.zeros(num_distractors, np.int64)])
    g_cams = rng.integers(0, num_cams, num_gallery)
    # A few query identities never appear in the gallery: FastReID skips those queries.
    unmatched = rng.choice(num_ids, int(round(unmatched_fraction * num_ids)), replace=False) + 1
    g_pids[np.isin(g_pids, unmatched)] = 0
    # Each distractor (including the images of those identities) gets a look of its own.
    others = int((g_pids == 0).sum())
    centres = rng.standard_normal((num_ids + 1 + others, dim), dtype=np.float32)
    cam_shift = 0.7 * rng.standard_normal((num_cams, dim), dtype=np.float32)
    g_keys = g_pids.copy()
    g_keys[g_pids == 0] = num_ids + 1 + np.arange(others)

    def images(keys, cams):
        x = centres[keys] + cam_shift[cams]
        x += 1.4 * rng.standard_normal(x.shape, dtype=np.float32)
        return x

    xq, xg = images(q_pids, q_cams), images(g_keys, g_cams)
    for i, w in enumerate(widths):
        narrow = 1.0 - float(w)
        view = np.eye(dim, dtype=np.float32) + (0.5 * narrow + 0.2) * rng.standard_normal(
            (dim, dim), dtype=np.float32) / np.sqrt(dim)
        for name, x in (("q", xq), ("g", xg)):
            noisy = x + 0.8 * (0.5 + narrow) * rng.standard_normal(x.shape, dtype=np.float32)
            np.save(os.path.join(folder, f"{name}_{i}.npy"), (noisy @ view).astype(np.float32))
    np.savez(os.path.join(folder, "ids.npz"), q_pids=q_pids, q_camids=q_cams, g_pids=g_pids,
             g_camids=g_cams, widths=np.asarray(widths, np.float64))
    return {"queries_without_match": int(np.isin(q_pids, unmatched).sum())}


def _load(folder: str):
    ids = np.load(os.path.join(folder, "ids.npz"))
    widths = [float(w) for w in ids["widths"]]
    feats = [(np.load(os.path.join(folder, f"q_{i}.npy")),
              np.load(os.path.join(folder, f"g_{i}.npy"))) for i in range(len(widths))]
    return widths, feats, ids["q_pids"], ids["q_camids"], ids["g_pids"], ids["g_camids"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(folder: str, chunk_size: int, backend: str, subsets) -> dict:
    import logging

    from sfsc.evaluation import evaluate_compatibility

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[bench_eval ours] %(message)s")

    widths, feats, qp, qc, gp, gc = _load(folder)
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
    from sfsc.evaluation.ranking import QueryRanks, rank_positives, summarize

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


def child_fastreid(folder: str, ranker: str, queries: int, pairs, cython_dir: str) -> dict:
    import importlib
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Cython rank evaluation")
    importlib.import_module("sfsc")  # shims FastReID for this Python / torch / numpy first
    rank = importlib.import_module("fastreid.evaluation.rank")
    build_dist = importlib.import_module("fastreid.utils.compute_dist").build_dist
    from sfsc.evaluation import MatchIndex

    if ranker == "cython":
        sys.path.insert(0, cython_dir)
        import rank_cy

        rank.evaluate_cy, rank.IS_CYTHON_AVAI = rank_cy.evaluate_cy, True
    widths, feats, qp, qc, gp, gc = _load(folder)
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


def _run_child(args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: live progress
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_cython_ranker(workdir: str):
    """Compile FastReID's rank_cy.pyx in ``workdir``; returns (folder or None, reason)."""
    import importlib.util

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


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def _compare(ours: dict, theirs: dict, tolerance: float) -> dict:
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="market")
    for name in ("num-query", "num-gallery", "num-ids", "num-cams", "num-distractors"):
        p.add_argument(f"--{name}", type=int, help="overrides the scale's value")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--widths", default="0.25,0.5,0.75,1.0")
    p.add_argument("--unmatched-fraction", type=float, default=0.005,
                   help="fraction of query identities absent from the gallery")
    p.add_argument("--fastreid", default="python,cython",
                   help="FastReID rankers to compare: python, cython, both or none")
    p.add_argument("--python-queries", type=int, default=100,
                   help="queries the Python ranker is timed on (0: all)")
    p.add_argument("--fastreid-queries", type=int, default=0,
                   help="queries the Cython ranker is timed on (0: all)")
    p.add_argument("--fastreid-pairs", type=int, default=0,
                   help="(query, gallery) pairs FastReID is timed on (0: all)")
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--backend", default="auto", choices=("auto", "faiss", "torch"))
    p.add_argument("--tolerance", type=float, default=1e-4, help="in percent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", choices=("ours", "python", "cython"), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--queries", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--pairs", default="", help=argparse.SUPPRESS)
    p.add_argument("--subsets", default="", help=argparse.SUPPRESS)
    p.add_argument("--cython-dir", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _ints(text: str):
    return [int(x) for x in text.split(",") if x]


def run_child(argv) -> dict:
    """The work of one ``--child`` process (``argv`` as given to it)."""
    args = parse_args(argv)
    if args.child == "ours":
        return child_ours(args.data, args.chunk_size, args.backend, _ints(args.subsets))
    pairs = [tuple(_ints(p)) for p in args.pairs.split(";") if p]
    return child_fastreid(args.data, args.child, args.queries, pairs, args.cython_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(argv if argv is not None else sys.argv[1:])))
        return 0
    return run_benchmark(args)


def _plan(args, ranker: str, num_query: int, num_gallery: int, num_pairs: int) -> dict:
    """Queries and pairs FastReID is timed on, or why it cannot run here."""
    queries = args.fastreid_queries if 0 < args.fastreid_queries < num_query else num_query
    if ranker == "python" and 0 < args.python_queries < queries:
        queries = args.python_queries
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
    count = num_pairs if args.fastreid_pairs <= 0 else min(args.fastreid_pairs, num_pairs)
    picks = np.unique(np.linspace(0, num_pairs - 1, count).round().astype(int))
    return {"queries": int(queries), "pair_ids": picks.tolist(), **full}


def run_benchmark(args) -> int:
    sizes = dict(SCALES[args.scale])
    if args.num_gallery is not None:
        sizes["num_distractors"] = 0
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    widths = [float(w) for w in args.widths.split(",")]
    rankers = [r for r in args.fastreid.split(",") if r and r != "none"]
    if set(rankers) - {"python", "cython"}:
        raise SystemExit(f"--fastreid takes python, cython or none, got {args.fastreid!r}")
    nq, ng = sizes["num_query"], sizes["num_gallery"]
    pairs = [(i, j) for i in range(len(widths)) for j in range(len(widths))]
    report = {"scale": args.scale if args.num_query is None else "custom", **sizes,
              "dim": args.dim, "widths": widths, "cells": len(pairs),
              "cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg())}
    workdir = tempfile.mkdtemp(prefix="sfsc-bench-")
    agree = True
    try:
        start = time.perf_counter()
        report.update(generate(workdir, **sizes, dim=args.dim, widths=widths, seed=args.seed,
                               unmatched_fraction=args.unmatched_fraction))
        log(f"generated {len(widths)} models, {nq} queries x {ng} gallery items "
            f"({time.perf_counter() - start:.1f} s)")
        plans = {r: _plan(args, r, nq, ng, len(pairs)) for r in rankers}
        subsets = sorted({p["queries"] for p in plans.values() if p.get("queries", nq) < nq})
        rng = np.random.default_rng(args.seed + 1)
        for n in subsets:
            np.save(os.path.join(workdir, f"subset_{n}.npy"), np.sort(rng.choice(nq, n, False)))
        log(f"ours: full {len(widths)}x{len(widths)} matrix")
        ours = _run_child(["--child", "ours", "--data", workdir, "--chunk-size",
                           str(args.chunk_size), "--backend", args.backend,
                           "--subsets", ",".join(map(str, subsets))])
        report["ours"] = {k: ours[k] for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
        report["ours"].update(chunk_size=args.chunk_size, backend=args.backend)
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
            res = _run_child(["--child", ranker, "--data", workdir, "--queries",
                              str(plan["queries"]), "--cython-dir", cython_dir, "--pairs",
                              ";".join(f"{i},{j}" for i, j in chosen)])
            ref = ours["matrix"] if plan["queries"] == nq else ours["subsets"][
                str(plan["queries"])]
            check = _compare(ref, res["cells"], args.tolerance)
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
    report["tolerance_percent"] = args.tolerance
    report["agree"] = agree
    report["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(report))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
