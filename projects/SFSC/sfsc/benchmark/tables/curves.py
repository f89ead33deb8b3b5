"""Training curves of an SFSC run: FastReID's metrics.json read into series, drawn to PNG."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Dict, List, Tuple

__all__ = ["Series", "plot", "read_metrics"]

logger = logging.getLogger(__name__)

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
                logger.warning("%s:%d is not JSON; skipped", path, line_no)
                continue
            if "iteration" not in record:
                continue
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    series[key].append((int(record["iteration"]), float(value)))
    return series


def _keys(series: Series, *prefixes: str) -> List[str]:
    return sorted(k for k in series if k.startswith(prefixes))


def _label(key: str) -> str:
    # The name in a panel's legend: the task, pair or width the key is about.
    whole = {"conflicts_cumulative": "all pairs", "layer_conflict_share": "any pair"}
    if key in whole:
        return whole[key]
    return key.split("/", 1)[-1].replace("loss_", "")


def plot(series: Series, output: str, title: str = "") -> List[str]:
    """Write the figure to ``output``: task losses, gradient norms and conflicts, then (when
    the run logged them) pair cosines, layers in conflict and the per-width diagnostics;
    returns the keys that were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("task loss", _keys(series, "loss_")),
        ("task gradient norm", _keys(series, "grad_norm/")),
        ("cumulative conflicting pairs", _keys(series, "conflicts_cumulative")),
    ]
    if not any(keys for _, keys in panels):
        raise ValueError("no task losses, gradient norms or conflict counts in the metrics: "
                         "is this the output folder of an SFSC training run?")
    optional = [  # drawn when the run logged them (older runs lack some)
        ("task-pair gradient cosine", _keys(series, "cos/")),
        ("share of shared layers in conflict", _keys(series, "layer_conflict_share")),
        ("training accuracy (top-1, own classifier)", _keys(series, "diag/acc@")),
        ("uncertainty u = C·p / S", _keys(series, "diag/u@")),
        ("BNNeck scale mean |γ|", _keys(series, "diag/bnneck_gamma@")),
        ("feature norm (neck; backbone pooled)", _keys(series, "diag/feat_norm@",
                                                       "diag/pool_feat_norm@")),
        ("logit spread (std over classes)", _keys(series, "diag/logit_std@")),
        ("L_ace and KL", _keys(series, "diag/ace@", "diag/kl@")),
        ("classifier row norm", _keys(series, "diag/classifier_norm")),
    ]
    panels += [(name, keys) for name, keys in optional if keys]
    rows = (len(panels) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(16, 4.2 * rows), squeeze=False)
    drawn = []
    for ax, (name, keys) in zip(axes.flat, panels):
        for key in keys:
            its, values = zip(*series[key])
            ax.plot(its, values, label=_label(key))
            drawn.append(key)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if keys and len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return drawn
