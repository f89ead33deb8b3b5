"""The SFSC paper's Fig. 5 (each task's gradient norm over iterations, with each task's weight
in the update beneath) and Fig. 6 (cumulative conflicting task pairs) for one or several runs
overlaid, read from committed run records (``curves``) or training folders (``metrics.json``)."""
from __future__ import annotations

import json
import os
from typing import List, NamedTuple, Optional, Sequence

import yaml

from .curves import Series, read_metrics
from .records import curves_to_series

__all__ = ["FIGURES", "Run", "load_run", "plot_conflicts", "plot_gradient_norms",
           "write_figures"]


class Run(NamedTuple):
    """One run's curves and the name its lines carry."""

    label: str
    series: Series


def _aggregation_of_folder(folder: str) -> Optional[str]:
    path = os.path.join(folder, "config.yaml")  # FastReID writes the run's config there
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            config = yaml.safe_load(f) or {}
        except yaml.YAMLError:  # only the legend needs it
            return None
    return (config.get("SFSC") or {}).get("AGGREGATION")


def load_run(path: str, label: Optional[str] = None) -> Run:
    """A run record (``.json`` holding ``curves``), a ``metrics.json`` or a training folder.

    The default label names the run (record: run name and seed) and its aggregation."""
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: pass a run record (.json), a "
                                "metrics.json or a training OUTPUT_DIR holding one")
    if os.path.basename(path) == "metrics.json":
        folder = os.path.dirname(os.path.abspath(path))
        name, aggregation = os.path.basename(folder), _aggregation_of_folder(folder)
        series = read_metrics(path)
    else:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict) or not record.get("curves"):
            raise ValueError(f"{path} holds no training curves: is it a run record?")
        name = f"{record.get('run', os.path.basename(path))} seed{record.get('seed', '?')}"
        aggregation = record.get("effective_config", {}).get("SFSC.AGGREGATION")
        series = curves_to_series(record["curves"])
    if label is None:
        label = f"{name} ({aggregation})" if aggregation else name
    return Run(label, dict(series))


def _task_label(key: str) -> str:
    # grad_norm/ori -> "ori (L_ori)", task_weight/compat@0.25 -> "0.25× (compatible)"
    task = key.split("/", 1)[1]
    return "ori (L_ori)" if task == "ori" else task.rsplit("@", 1)[-1] + "× (compatible)"


def _task_keys(run: Run, prefix: str) -> List[str]:
    """``prefix<task>`` keys the run logged, the full model's first."""
    return sorted((k for k, v in run.series.items() if k.startswith(prefix) and v),
                  key=lambda k: (k != prefix + "ori", k))


_STYLES = ("-", "--", ":", "-.")


def _line(ax, points, **kwargs) -> None:
    its, values = zip(*points)
    ax.plot(its, values, **kwargs)


def _figure(panels: int, columns: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.4 * columns, 4.0 * rows),
                             squeeze=False)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:panels])


def _save(plt, fig, output: str, title: str) -> None:
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(output, dpi=110)
    plt.close(fig)


def _paired_figure(panels: int, columns: int):
    """Like _figure, with a second panel beneath each one: -> plt, fig, tops, bottoms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(2 * rows, columns, figsize=(5.4 * columns, 3.4 * 2 * rows),
                             squeeze=False)
    cells = [(2 * (i // columns), i % columns) for i in range(rows * columns)]
    for r, c in cells[panels:]:
        axes[r][c].set_visible(False)
        axes[r + 1][c].set_visible(False)
    return (plt, fig, [axes[r][c] for r, c in cells[:panels]],
            [axes[r + 1][c] for r, c in cells[:panels]])


def _task_panels(axes, runs: Sequence[Run], keys: List[List[str]], ylabel: str) -> List[str]:
    """One panel per run, a line per task (a task's colour the same in every panel), on one
    scale from 0 (or below, for a negative weight); -> ``label: key`` lines drawn."""
    tasks = sorted({k.split("/", 1)[1] for ks in keys for k in ks},
                   key=lambda t: (t != "ori", t))
    colours = {t: f"C{i}" for i, t in enumerate(tasks)}
    drawn = []
    for ax, run, run_keys in zip(axes, runs, keys):
        for key in run_keys:
            _line(ax, run.series[key], label=_task_label(key),
                  color=colours[key.split("/", 1)[1]])
            drawn.append(f"{run.label}: {key}")
        ax.set_title(run.label)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if run_keys:
            ax.legend(fontsize=8)
        else:  # a record made before these were logged
            ax.text(0.5, 0.5, "not logged by this run", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
    values = [v for run, ks in zip(runs, keys) for k in ks for _, v in run.series[k]]
    if values:
        for ax in axes:
            ax.set_ylim(min(0.0, min(values) * 1.05), max(values) * 1.05 or 1.0)
    return drawn


def plot_gradient_norms(runs: Sequence[Run], output: str) -> List[str]:
    """Fig. 5: one panel per run, side by side on one scale, a line per task's gradient norm;
    when the runs logged them, beneath each, each task's weight in the update (its
    coefficient in the aggregated gradient: how the aggregation redistributed the tasks).
    Returns the ``label: key`` lines drawn."""
    keys = [_task_keys(run, "grad_norm/") for run in runs]
    if not any(keys):
        raise ValueError("no run logged per-task gradient norms (grad_norm/<task>)")
    weights = [_task_keys(run, "task_weight/") for run in runs]
    columns = min(len(runs), 3)
    if not any(weights):  # runs logged before the weights were
        plt, fig, axes = _figure(len(runs), columns)
        drawn = _task_panels(axes, runs, keys, "gradient norm ‖g‖")
        _save(plt, fig, output, "Per-task gradient norm (the paper's Fig. 5)")
        return drawn
    plt, fig, tops, bottoms = _paired_figure(len(runs), columns)
    drawn = _task_panels(tops, runs, keys, "gradient norm ‖g‖")
    drawn += _task_panels(bottoms, runs, weights, "task weight in the update")
    _save(plt, fig, output, "Per-task gradient norm (the paper's Fig. 5) and task weight")
    return drawn


def plot_conflicts(runs: Sequence[Run], output: str) -> List[str]:
    """Fig. 6: cumulative conflicting task pairs of every run on one axis; then, when logged,
    the share of shared layers where some pair conflicts (overlaid) and each run's cumulative
    count per pair. Returns the ``label: key`` lines drawn."""
    if not any(run.series.get("conflicts_cumulative") for run in runs):
        raise ValueError("no run logged cumulative conflict counts (conflicts_cumulative)")
    layered = [run for run in runs if run.series.get("layer_conflict_share")]
    paired = [run for run in runs
              if any(k.startswith("conflicts_cumulative/") and v for k, v in run.series.items())]
    panels = 1 + bool(layered) + len(paired)
    plt, fig, axes = _figure(panels, min(panels, 2))
    pairs = sorted({k for run in paired for k in run.series
                    if k.startswith("conflicts_cumulative/")})
    drawn = []
    ax = axes[0]
    for i, run in enumerate(runs):
        if run.series.get("conflicts_cumulative"):  # runs with equal counts stay visible
            _line(ax, run.series["conflicts_cumulative"], label=run.label,
                  color=f"C{i % 10}", drawstyle="steps-post",
                  ls=_STYLES[i % len(_STYLES)], lw=2.5 - 0.4 * (i % 4))
            drawn.append(f"{run.label}: conflicts_cumulative")
    ax.set_title("conflicting task pairs, cumulative")
    ax.set_ylabel("pairs with g_a·g_b < 0")
    ax.set_ylim(bottom=0)
    if layered:
        ax = axes[1]
        for i, run in enumerate(runs):  # a run's colour in the panel above
            if run.series.get("layer_conflict_share"):
                _line(ax, run.series["layer_conflict_share"], label=run.label,
                      color=f"C{i % 10}", lw=0.8)
                drawn.append(f"{run.label}: layer_conflict_share")
        ax.set_title("layers where some pair conflicts")
        ax.set_ylabel("share of layers two tasks reach")
        ax.set_ylim(-0.02, 1.02)
    for ax, run in zip(axes[1 + bool(layered):], paired):
        for key in sorted(k for k, v in run.series.items()
                          if k.startswith("conflicts_cumulative/") and v):
            _line(ax, run.series[key], label=key.split("/", 1)[1], drawstyle="steps-post",
                  color=f"C{pairs.index(key) % 10}")  # a pair's colour in every panel
            drawn.append(f"{run.label}: {key}")
        ax.set_title(f"{run.label}: per task pair, cumulative")
        ax.set_ylabel("conflicting steps")
        ax.set_ylim(bottom=0)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(plt, fig, output, "Conflicting gradient pairs (the paper's Fig. 6)")
    return drawn


# File name of each figure in write_figures' folder, and what draws it.
FIGURES = {"fig5_gradient_norms.png": plot_gradient_norms,
           "fig6_conflicts.png": plot_conflicts}


def write_figures(runs: Sequence[Run], folder: str) -> List[str]:
    """Both figures into ``folder`` (created); one line per figure: what was written, or why
    not (e.g. runs without compatible tasks have no pairs). ValueError when neither was."""
    os.makedirs(folder, exist_ok=True)
    lines, written = [], 0
    for name, draw in FIGURES.items():
        path = os.path.join(folder, name)
        try:
            drawn = draw(runs, path)
        except ValueError as e:
            lines.append(f"skipped {path}: {e}")
            continue
        written += 1
        lines.append(f"wrote {path} ({len(drawn)} lines)")
    if not written:
        raise ValueError("; ".join(lines))
    return lines
