#!/usr/bin/env python3
"""ShuffleNet v1 grouped-conv slicing, leading vs per_group (benchmarks/shufflenet_grouping).

    python tools/shufflenet_grouping.py --seeds 0 1 --widths 0.25

Trains one switchable ShuffleNet v1 per (method, rule, seed) at the learning-check scale,
writes one JSON record per run under --out (reused when present) and prints a pipe table.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from sfsc.benchmark.studies.shufflenet_grouping import METHODS, run_comparison
from sfsc.modeling.switchable import GROUP_SLICINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--rules", nargs="+", default=list(GROUP_SLICINGS),
                        choices=list(GROUP_SLICINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "shufflenet_grouping"))
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "logs", "shufflenet_grouping"))
    parser.add_argument("--configs", default=os.path.join(ROOT, "configs", "Synthetic"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = run_comparison(args.configs, args.methods, args.rules, args.seeds, args.widths,
                             args.out, args.work_dir)
    cross = [k for k in records[0] if k.startswith("cross@")] if records else []
    print("| method | rule | seed | " + " | ".join(f"M({k[6:]}, 1.0)" for k in cross)
          + " | mean M(γ, 1.0) | M(1.0, 1.0) | wall s |\n" + "|---" * (len(cross) + 6) + "|")
    for r in records:
        print(f"| {r['method']} | {r['rule']} | {r['seed']} | "
              + "".join(f"{r[k]:.1f} | " for k in cross)
              + f"{r['cross_mean']:.1f} | {r['full']:.1f} | {r['wall_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
