#!/usr/bin/env python3
"""Draw SFSC training curves to PNG: one run's overview, or the paper's Fig. 5 and 6 for one or
several runs overlaid.

    python tools/plot_training.py logs/demo [--output logs/demo/training_curves.png]
    python tools/plot_training.py RUN [RUN ...] --figures OUT [--labels NAME ...]

A RUN is a training OUTPUT_DIR (its metrics.json) or a committed run record
(benchmarks/<dataset>/runs/seed<k>/<run>.json). The overview has a panel per group of curves:
task losses, gradient norms, conflicting pairs, pair cosines, layers in conflict, then the
per-width diagnostics. ``--figures OUT`` writes OUT/fig5_gradient_norms.png (each task's
gradient norm, a panel per run, and beneath it each task's weight in the update when the run
logged it) and OUT/fig6_conflicts.png (cumulative conflicting pairs of
every run overlaid, the share of layers in conflict, and the count per pair).
"""
import argparse
import os
import sys

from sfsc.benchmark.tables.curves import plot
from sfsc.benchmark.tables.figures import load_run, write_figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="training OUTPUT_DIR (metrics.json) or run record (.json)")
    parser.add_argument("--output", help="overview PNG of one RUN (default "
                        "OUTPUT_DIR/training_curves.png; needed for a record)")
    parser.add_argument("--figures", metavar="OUT",
                        help="folder for the paper's Fig. 5 and 6 of every RUN")
    parser.add_argument("--labels", nargs="+", metavar="NAME",
                        help="one legend name per RUN (default: run name and aggregation)")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"{len(args.labels)} --labels for {len(args.runs)} runs")
    if len(args.runs) > 1 and not args.figures:
        parser.error("several runs are drawn overlaid as the paper's figures: pass --figures OUT")
    if args.output and len(args.runs) > 1:
        parser.error("--output draws one run's overview: pass one RUN")
    try:
        runs = [load_run(path, label) for path, label
                in zip(args.runs, args.labels or [None] * len(args.runs))]
        if args.figures:
            for line in write_figures(runs, args.figures):
                print(line)
        if args.output or not args.figures:
            output = args.output
            if output is None:
                if not os.path.isdir(args.runs[0]):
                    parser.error("pass --output PNG for the overview of a record or file")
                output = os.path.join(args.runs[0], "training_curves.png")
            drawn = plot(runs[0].series, output, title=runs[0].label)
            print(f"wrote {output} ({len(drawn)} curves)")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
