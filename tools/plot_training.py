#!/usr/bin/env python3
"""Draw an SFSC run's training curves from its metrics.json to PNG.

    python tools/plot_training.py logs/demo [--output logs/demo/training_curves.png]

Three panels, as in the SFSC paper's Figures 5 and 6: the loss of every task (the original
loss and each width's compatible loss), the norm of every task's gradient, and the cumulative
number of conflicting gradient pairs (negative dot products).
"""
import argparse
import os
import sys

from sfsc.benchmark.curves import plot, read_metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="a training OUTPUT_DIR holding metrics.json")
    parser.add_argument("--output", help="PNG path (default OUTPUT_DIR/training_curves.png)")
    args = parser.parse_args(argv)
    metrics = os.path.join(args.output_dir, "metrics.json")
    if not os.path.isfile(metrics):
        print(f"error: {metrics} does not exist. Pass the OUTPUT_DIR of a training run "
              "(FastReID writes metrics.json there while training).", file=sys.stderr)
        return 2
    output = args.output or os.path.join(args.output_dir, "training_curves.png")
    try:
        drawn = plot(read_metrics(metrics), output, title=os.path.basename(
            os.path.normpath(args.output_dir)))
    except ValueError as e:
        print(f"error: {metrics}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(drawn)} curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
