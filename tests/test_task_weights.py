"""Each task's weight in the update (the aggregation's coefficient of its gradient) is logged
beside its gradient norm, and drawn beneath the paper's Fig. 5."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from test_aggregation import _pcgrad_coefficients_loop

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.benchmark.tables.figures import load_run, plot_gradient_norms
from sfsc.engine.aggregation import PCGradAggregation, build_aggregation
from sfsc.engine.conflicts import conflict_scalars
from sfsc.engine.task_step import TaskGradientTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["ori", "compat@0.25", "compat@0.5"]


def _step(cfg, aggregation, seed=1):
    """One step of a three-task model whose tasks all conflict (torch seed 1, as in
    test_task_step): -> (trainer, logged scalars, the task gradients (T, P) float64)."""
    cfg.SFSC.WIDTHS = [0.25, 0.5]
    torch.manual_seed(seed)
    model = build_model(cfg)
    batch = {"images": torch.rand(8, 3, 32, 16) * 255, "targets": torch.arange(8)}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch], optimizer, None, aggregation)
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
        logged = {k: v[0] for k, v in storage.latest().items()}
    return trainer, logged, trainer.task_grads.grads.double()


def test_sum_logs_a_weight_of_one_per_task(sfsc_cfg):
    sfsc_cfg.SFSC.AGGREGATION = "sum"
    trainer, logged, _ = _step(sfsc_cfg, build_aggregation(sfsc_cfg))
    assert {k: v for k, v in logged.items() if k.startswith("task_weight/")} == \
        {f"task_weight/{t}": 1.0 for t in TASKS}
    assert trainer.task_names == TASKS


def test_pcgrad_logs_the_coefficients_of_algorithm_1(sfsc_cfg):
    trainer, logged, grads = _step(sfsc_cfg, PCGradAggregation(seed=5))
    assert trainer.conflicts_total == 3  # every pair: every projection moves a weight
    rng = np.random.default_rng(5)  # the orders PCGradAggregation(seed=5) draws
    orders = [rng.permutation([b for b in range(3) if b != a]) for a in range(3)]
    expected, _ = _pcgrad_coefficients_loop(grads, orders)  # Algorithm 1 on the vectors
    assert all(c > 1 for c in expected)  # each task was projected against
    for task, c in zip(TASKS, expected.tolist()):
        assert logged[f"task_weight/{task}"] == pytest.approx(c, rel=1e-6)
    # The update is the weighted sum of the task gradients with the logged weights.
    weights = torch.tensor([logged[f"task_weight/{t}"] for t in TASKS], dtype=torch.float64)
    # (float32 products: a rounding of 1e-6 relative to the largest entry)
    expected_update = weights @ grads
    assert torch.allclose(trainer.task_grads.flat.double(), expected_update, rtol=0,
                          atol=1e-6 * float(expected_update.abs().max()))


def test_conflict_scalars_name_the_weights_by_task():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    out = conflict_scalars(g @ g.t(), [0.0, 0.0], ["ori", "compat@0.5"], [0],
                           weights=[0.75, 1.25])
    assert out["task_weight/ori"] == 0.75 and out["task_weight/compat@0.5"] == 1.25
    assert "task_weight/ori" not in conflict_scalars(g @ g.t(), [0.0, 0.0],
                                                     ["ori", "compat@0.5"], [0])


def _metrics(folder, steps=100, weights=True):
    folder.mkdir()
    with open(folder / "metrics.json", "w") as f:
        for it in range(19, steps, 20):
            row = {"iteration": it}
            for i, task in enumerate(TASKS):
                row[f"grad_norm/{task}"] = 1.0 + i + it / steps
                if weights:
                    row[f"task_weight/{task}"] = 2.0 - i * 0.5 + it / (10 * steps)
            f.write(json.dumps(row) + "\n")
    return str(folder)


def _drawn_lines(fig):
    """{(panel title, y label): {legend label: (iterations, values)}} of the visible panels."""
    return {(ax.get_title(), ax.get_ylabel()): {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.get_lines()} for ax in fig.axes if ax.get_visible()}


def test_fig5_draws_each_tasks_weight_beneath_its_norm(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), close(fig)))
    runs = [load_run(_metrics(tmp_path / "a")), load_run(_metrics(tmp_path / "b"))]
    drawn = plot_gradient_norms(runs, str(tmp_path / "fig5.png"))
    assert len(drawn) == 12  # 2 runs × 3 tasks × (norm, weight)
    assert drawn[:3] == [f"a: grad_norm/{t}" for t in TASKS]  # the full model first
    panels = _drawn_lines(figures[0])
    series = runs[1].series
    weights = panels[("b", "task weight in the update")]
    assert weights["0.25× (compatible)"] == tuple(
        list(x) for x in zip(*series["task_weight/compat@0.25"]))
    assert weights["ori (L_ori)"] == tuple(list(x) for x in zip(*series["task_weight/ori"]))
    norms = panels[("b", "gradient norm ‖g‖")]
    assert norms["0.5× (compatible)"] == tuple(
        list(x) for x in zip(*series["grad_norm/compat@0.5"]))
    # A task keeps its colour in the norm and the weight panels of every run.
    colours = {(title, ylabel, line.get_label()): line.get_color()
               for ax in figures[0].axes for line in ax.get_lines()
               for title, ylabel in [(ax.get_title(), ax.get_ylabel())]}
    for task in ("ori (L_ori)", "0.5× (compatible)"):
        assert len({c for (_, _, label), c in colours.items() if label == task}) == 1


def test_the_tool_draws_fig5_with_and_without_logged_weights(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "plot_training", os.path.join(ROOT, "tools", "plot_training.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    new, old = _metrics(tmp_path / "new"), _metrics(tmp_path / "old", weights=False)
    assert tool.main([new, old, "--figures", str(tmp_path / "f")]) == 0
    assert "fig5_gradient_norms.png (9 lines)" in capsys.readouterr().out
    assert tool.main([old, "--figures", str(tmp_path / "g")]) == 0  # norms only
    assert "fig5_gradient_norms.png (3 lines)" in capsys.readouterr().out
