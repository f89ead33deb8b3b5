#!/usr/bin/env python3
"""Can an evidential loss fit C identities? SFSC's head on class-structured features.

    python tools/evidential_probe.py --classes 32 256 751 4101 --candidates paper kl_mean

See sfsc/benchmark/studies/evidential_probe.py for the probe and evidential_candidates.py for the
candidates. Prints a pipe table on stderr and JSON on stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys

import torch

from sfsc.benchmark.studies.evidential_candidates import CANDIDATES, loss_kwargs
from sfsc.benchmark.studies.evidential_probe import probe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[32, 256, 751, 4101])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--separation", type=float, nargs="+", default=[0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=3.5e-3, help="Adam learning rate")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    header = ("| C | separation | candidate | seed | accuracy % | full accuracy % | u | |γ| "
              "| L_ace | KL |")
    print(header + "\n" + "|---" * 10 + "|", file=sys.stderr)
    for classes, separation, name, seed in itertools.product(
            args.classes, args.separation, args.candidates, args.seeds):
        row = {"classes": classes, "separation": separation, "candidate": name, "seed": seed,
               **probe(classes, separation, args.steps, args.lr, seed=seed,
                       **loss_kwargs(name))}
        rows.append(row)
        print(f"| {classes} | {separation:g} | {name} | {seed} | {row['accuracy']} | "
              f"{row['full_accuracy']} | {row['uncertainty']} | {row['gamma']} | "
              f"{row['ace']} | {row['kl']} |", file=sys.stderr, flush=True)
    print(json.dumps({"steps": args.steps, "lr": args.lr, "candidates": CANDIDATES,
                      "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
