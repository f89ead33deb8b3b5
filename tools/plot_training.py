#!/usr/bin/env python3
"""Draw an SFSC run's training curves from its metrics.json to PNG.

    python tools/plot_training.py logs/demo [--output logs/demo/training_curves.png]

Three panels, as in the SFSC paper's Figures 5 and 6: the loss of every task (the original
loss and each width's compatible loss), the norm of every task's gradient, and the cumulative
number of conflicting gradient pairs (negative dot products).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

Series = Dict[str, List[Tuple[int, float]]]


def read_metrics(path: str) -> Series:
    """FastReID's metrics.json (one JSON object per line) -> {key: [(iteration, value)]}."""
    series: Series = defaultdict(list)
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: {path}:{line_no} is not JSON; skipped", file=sys.stderr)
                continue
            if "iteration" not in record:
                continue
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    series[key].append((int(record["iteration"]), float(value)))
    return series


def plot(series: Series, output: str, title: str = "") -> List[str]:
    """Write the three-panel figure to ``output``; returns the keys that were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("task loss", sorted(k for k in series if k.startswith("loss_"))),
        ("task gradient norm", sorted(k for k in series if k.startswith("grad_norm/"))),
        ("cumulative conflicting pairs", [k for k in ("conflicts_cumulative",) if k in series]),
    ]
    if not any(keys for _, keys in panels):
        raise ValueError("no task losses, gradient norms or conflict counts in the metrics: "
                         "is this the output folder of an SFSC training run?")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    drawn = []
    for ax, (name, keys) in zip(axes, panels):
        for key in keys:
            its, values = zip(*series[key])
            ax.plot(its, values, label=key.replace("grad_norm/", "").replace("loss_", ""))
            drawn.append(key)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if keys and len(keys) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return drawn


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
