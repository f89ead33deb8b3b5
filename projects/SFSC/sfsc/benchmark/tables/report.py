"""Benchmark results in the layouts of the SFSC paper's tables, as Markdown, JSON and heatmaps.

``matrices[method][seed]`` is a compatibility.json dict (``widths``, ``mAP``, ``R1``, ``mINP``;
rows = query model). Cells are reported as mean ± standard deviation over seeds.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np

from .methods import ABLATION, METHODS, method_named

__all__ = ["aggregate", "markdown", "heatmaps"]

Matrices = Dict[str, Dict[int, dict]]


def aggregate(matrices: Matrices) -> Dict[str, dict]:
    """Per method and metric: mean, std (ddof 1 when there are 2+ seeds) and per-seed values."""
    out = {}
    for key, by_seed in matrices.items():
        seeds = sorted(by_seed)
        first = by_seed[seeds[0]]
        entry = {"title": method_named(key).title, "widths": first["widths"], "seeds": seeds}
        for metric in ("mAP", "R1", "mINP"):
            stack = np.array([by_seed[s][metric] for s in seeds], dtype=float)
            entry[metric] = {"mean": stack.mean(0).round(2).tolist(),
                             "std": (stack.std(0, ddof=1) if len(seeds) > 1
                                     else np.zeros_like(stack[0])).round(2).tolist(),
                             "per_seed": stack.round(2).tolist()}
        out[key] = entry
    return out


def _cell(entry: dict, metric: str, i: int, j: int) -> str:
    mean, std = entry[metric]["mean"][i][j], entry[metric]["std"][i][j]
    return f"{mean:.2f} ± {std:.2f}" if len(entry["seeds"]) > 1 else f"{mean:.2f}"


def _full_row(entry: dict, key: str, i: int) -> int:
    """Column of the gallery model of M(φ_γ, φ): the full model; a unified model's own width."""
    return i if method_named(key).kind == "per_width" else len(entry["widths"]) - 1


def _label(w: float) -> str:
    return f"φ_{w:g}"


def table2(results: Dict[str, dict], order: Sequence[str]) -> List[str]:
    lines = ["## Table 2 layout: mAP (%) matrices, rows = query model, columns = gallery model",
             ""]
    for key in order:
        entry = results[key]
        widths = entry["widths"]
        lines += [f"**{entry['title']}**", "",
                  "| query \\ gallery | " + " | ".join(_label(w) for w in widths) + " |",
                  "|---" * (len(widths) + 1) + "|"]
        for i, w in enumerate(widths):
            cells = [_cell(entry, "mAP", i, j) if method_named(key).kind != "per_width" or i == j
                     else "-" for j in range(len(widths))]
            lines.append(f"| {_label(w)} | " + " | ".join(cells) + " |")
        if method_named(key).kind == "per_width":
            off = np.array(entry["mAP"]["mean"])
            off = off[~np.eye(len(widths), dtype=bool)]
            lines += ["", f"Separately trained unified models are not compatible with each "
                      f"other: off-diagonal mAP {off.mean():.2f} on average "
                      f"(max {off.max():.2f})."]
        lines.append("")
    return lines


def table3(results: Dict[str, dict], order: Sequence[str], metrics=("R1", "mAP"),
           title: str = "Table 3 layout: M(φ_γ, φ), query at width γ against the full gallery"
           ) -> List[str]:
    widths = results[order[0]]["widths"]
    header = " | ".join(f"M({_label(w)}, φ) {m}" for w in widths for m in metrics)
    lines = [f"## {title}", "", f"| method | {header} |",
             "|---" * (len(widths) * len(metrics) + 1) + "|"]
    for key in order:
        entry = results[key]
        cells = [_cell(entry, m, i, _full_row(entry, key, i))
                 for i in range(len(widths)) for m in metrics]
        lines.append(f"| {entry['title']} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(results: Dict[str, dict], dataset: str, header: Sequence[str] = ()) -> str:
    """The three tables (Table 2, 3 and 6 layouts) as Markdown."""
    order = [k for k in METHODS if k in results] + [k for k in results if k not in METHODS]
    main = [k for k in order if k not in ("sfsc_wo_loss", "sfsc_wo_aggregation")]
    lines = [f"# SFSC benchmark on {dataset}", "", *header, ""]
    lines += table2(results, main)
    lines += table3(results, main)
    ablation = [k for k in ABLATION if k in results]
    if len(ablation) > 1:
        lines += table3(results, ablation, metrics=("mAP",),
                        title="Table 6 layout (ablation): mAP of M(φ_γ, φ)")
    return "\n".join(lines)


def heatmaps(results: Dict[str, dict], folder: str) -> List[str]:
    """One PNG per method of its mean mAP matrix; returns the file paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    paths = []
    for key, entry in results.items():
        matrix = np.array(entry["mAP"]["mean"])
        labels = [_label(w) for w in entry["widths"]]
        fig, ax = plt.subplots(figsize=(4.6, 4))
        image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center",
                        color="white" if matrix[i, j] < 60 else "black", fontsize=9)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("gallery model")
        ax.set_ylabel("query model")
        ax.set_title(f"{entry['title']}: mAP (%)")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        path = os.path.join(folder, f"{key}_mAP.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
