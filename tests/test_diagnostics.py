"""Per-width training diagnostics: computed from the model's own tensors, logged every step and
drawn by the training-curve plot."""
import math

import pytest
import torch
import torch.nn.functional as F

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.benchmark.tables.curves import plot
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.modeling.losses import evidential_loss
from sfsc.modeling.switchable import width_key


def _batch(n=8, classes=8):
    torch.manual_seed(0)
    return {"images": torch.rand(n, 3, 32, 16) * 255, "targets": torch.arange(n) % classes}


def test_diagnostics_match_the_models_tensors(sfsc_cfg):
    torch.manual_seed(0)
    model = build_model(sfsc_cfg).train()
    batch = _batch()
    with EventStorage(0):
        model(batch)
    d = {k: float(v) for k, v in model.diagnostics.items()}
    images = model.preprocess_image(batch)
    for width in (0.25, 0.5, 0.75, 1.0):
        bn = model.heads.bottleneck[1].bn[width_key(width)]
        assert math.isclose(d[f"bnneck_gamma@{width:g}"], bn.weight.abs().mean().item(),
                            rel_tol=1e-6)
        with torch.no_grad():
            out = model._outputs(images, batch["targets"], width)
        assert math.isclose(d[f"feat_norm@{width:g}"],
                            out["neck_feat"].norm(dim=1).mean().item(), rel_tol=1e-4)
        logits = F.linear(out["neck_feat"], model.heads.weight)
        assert math.isclose(d[f"logit_std@{width:g}"], logits.std(dim=1).mean().item(),
                            rel_tol=1e-4)
        if width < 1.0:  # the sub-models' evidential terms, under the configured loss
            e = sfsc_cfg.SFSC.EVIDENTIAL
            terms = evidential_loss(logits, batch["targets"], e.LAMBDA, kl_target=e.KL_TARGET,
                                    kl_norm=e.KL_NORM)
            assert math.isclose(d[f"u@{width:g}"], terms["uncertainty"].item(), rel_tol=1e-4)
            assert math.isclose(d[f"kl@{width:g}"], terms["kl"].item(), rel_tol=1e-3)
    assert math.isclose(d["classifier_norm"], model.heads.weight.norm(dim=1).mean().item(),
                        rel_tol=1e-6)
    assert "u@1" not in d  # the full model trains with L_ori only


def test_the_step_logs_every_diagnostic(sfsc_cfg):
    torch.manual_seed(0)
    model = build_model(sfsc_cfg).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [_batch()] * 2, optimizer, None,
                                  build_aggregation(sfsc_cfg))
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
        logged = set(storage.histories())
    expected = {f"diag/{k}" for k in model.diagnostics}
    assert {"diag/u@0.25", "diag/bnneck_gamma@0.75", "diag/classifier_norm"} <= expected
    assert expected <= logged


def _figure_of(plot_call, monkeypatch):
    """Run ``plot_call`` and return the matplotlib figure it drew (it closes the figure)."""
    import matplotlib.pyplot as plt

    figures, close = [], plt.close

    def keep(fig=None):
        figures.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    drawn = plot_call()
    assert len(figures) == 1
    return figures[0], drawn


def _panels(fig):
    """{title: [(legend label, iterations, values)]} of the figure's visible panels."""
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert len(titles) == len(set(titles)), titles
    return {ax.get_title(): [(line.get_label(), list(line.get_xdata()), list(line.get_ydata()))
                             for line in ax.get_lines()] for ax in visible}


def test_the_curve_plot_draws_the_diagnostics(tmp_path, monkeypatch):
    its = list(range(0, 100, 20))
    # Each curve its own values, so a curve drawn from another key shows.
    curves = {"loss_cls": 5.0, "grad_norm/ori": 2.0, "diag/u@0.25": 0.5, "diag/u@0.5": 0.25,
              "diag/bnneck_gamma@0.25": 1.5, "diag/kl@0.25": 3.0, "diag/ace@0.25": 4.0,
              "diag/classifier_norm": 7.0}
    series = {k: [(i, v + i / 1000) for i in its] for k, v in curves.items()}

    def line(key, label):
        return (label, its, [v for _, v in series[key]])

    # Found by title: the figure may gain panels for what this run did not log.
    expected = {
        "task loss": [line("loss_cls", "cls")],
        "task gradient norm": [line("grad_norm/ori", "ori")],
        "uncertainty u = C·p / S": [line("diag/u@0.25", "u@0.25"), line("diag/u@0.5", "u@0.5")],
        "BNNeck scale mean |γ|": [line("diag/bnneck_gamma@0.25", "bnneck_gamma@0.25")],
        "L_ace and KL": [line("diag/ace@0.25", "ace@0.25"), line("diag/kl@0.25", "kl@0.25")],
        "classifier row norm": [line("diag/classifier_norm", "classifier_norm")],
    }
    fig, drawn = _figure_of(lambda: plot(series, str(tmp_path / "curves.png")), monkeypatch)
    assert sorted(drawn) == sorted(series)
    panels = _panels(fig)
    for title, lines in expected.items():
        assert panels.get(title) == lines, title
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title() in expected}
    assert all(ax.get_xlabel() == "iteration" for ax in axes.values())
    legend = axes["uncertainty u = C·p / S"].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["u@0.25", "u@0.5"]
    # Each curve once in the whole figure: no other panel draws it again.
    everywhere = [(x, y) for lines in panels.values() for _, x, y in lines]
    for key in series:
        _, x, y = line(key, "")
        assert everywhere.count((x, y)) == 1, key
    # The diagnostics start a second row, below the panels every run has.
    rows = {title: ax.get_subplotspec().rowspan.start for title, ax in axes.items()}
    always = ("task loss", "task gradient norm")
    assert [rows[t] for t in always] == [0, 0]
    assert min(rows[t] for t in expected if t not in always) == 1
    assert (tmp_path / "curves.png").stat().st_size > 0

    plain = {k: v for k, v in series.items() if not k.startswith("diag/")}
    fig, _ = _figure_of(lambda: plot(plain, str(tmp_path / "plain.png")), monkeypatch)
    panels = _panels(fig)
    assert set(always) <= set(panels)
    assert not set(panels) & (set(expected) - set(always))  # no diagnostics panel
    with pytest.raises(ValueError, match="SFSC training run"):
        plot({"diag/u@0.25": series["diag/u@0.25"]}, str(tmp_path / "none.png"))
