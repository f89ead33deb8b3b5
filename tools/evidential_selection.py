#!/usr/bin/env python3
"""Stage 2a of the evidential-loss selection (benchmarks/evidential_selection/PROTOCOL.md).

    python tools/evidential_selection.py --seeds 10 11 --candidates paper sensoy_sum kl_mean

Trains, per seed, unified 0.25x / 1.0x models and one SFSC run per candidate at the
learning-check scale, writes one JSON record per run under --out (reused when present) and
prints a pipe table.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from sfsc.benchmark.studies.evidential_candidates import CANDIDATES
from sfsc.benchmark.studies.evidential_selection import run_selection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "evidential_selection",
                                                      "stage2a"))
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "logs", "evidential_selection"))
    parser.add_argument("--configs", default=os.path.join(ROOT, "configs", "Synthetic"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = run_selection(args.configs, args.candidates, args.seeds, args.out, args.work_dir)
    print("| candidate | seed | M(0.25, 1.0) | M(1.0, 1.0) | unified M(1.0, 1.0) | "
          "unified 0.25 alone | wall s |\n" + "|---" * 7 + "|")
    for r in records:
        print(f"| {r['candidate']} | {r['seed']} | {r['cross']:.1f} | {r['full']:.1f} | "
              f"{r['unified_full']:.1f} | {r['own']:.1f} | {r['wall_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
