"""Per-width training diagnostics: computed from the model's own tensors, logged every step and
drawn by the training-curve plot."""
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

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


def test_the_curve_plot_draws_the_diagnostics(tmp_path):
    its = list(range(0, 100, 20))
    series = {"loss_cls": [(i, 1.0) for i in its], "grad_norm/ori": [(i, 2.0) for i in its],
              "diag/u@0.25": [(i, 0.5) for i in its],
              "diag/bnneck_gamma@0.25": [(i, 1.0) for i in its],
              "diag/kl@0.25": [(i, 3.0) for i in its]}
    out = tmp_path / "curves.png"
    drawn = plot(series, str(out))
    assert set(drawn) == set(series)
    width, height = Image.open(out).size
    assert height > 4.2 * 110 + 10  # a second row of panels: the diagnostics drawn
    without = tmp_path / "plain.png"
    plot({k: v for k, v in series.items() if not k.startswith("diag/")}, str(without))
    assert Image.open(without).size[1] < 4.2 * 110 + 10
    with pytest.raises(ValueError, match="SFSC training run"):
        plot({"diag/u@0.25": series["diag/u@0.25"]}, str(tmp_path / "none.png"))
