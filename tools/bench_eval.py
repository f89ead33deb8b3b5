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
import json
import sys

from sfsc.benchmark.speed.eval_speed import SCALES, SpeedSettings, run_benchmark


def parse_args(argv=None) -> argparse.Namespace:
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
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> SpeedSettings:
    sizes = dict(SCALES[args.scale])
    if args.num_gallery is not None:
        sizes["num_distractors"] = 0
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    rankers = [r for r in args.fastreid.split(",") if r and r != "none"]
    if set(rankers) - {"python", "cython"}:
        raise SystemExit(f"--fastreid takes python, cython or none, got {args.fastreid!r}")
    return SpeedSettings(
        **sizes, dim=args.dim, widths=[float(w) for w in args.widths.split(",")],
        unmatched_fraction=args.unmatched_fraction, rankers=rankers,
        python_queries=args.python_queries, fastreid_queries=args.fastreid_queries,
        fastreid_pairs=args.fastreid_pairs, chunk_size=args.chunk_size, backend=args.backend,
        tolerance=args.tolerance, seed=args.seed,
        scale=args.scale if args.num_query is None else "custom")


def main(argv=None) -> int:
    report = run_benchmark(settings_from_args(parse_args(argv)))
    print(json.dumps(report))
    return 0 if report["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
