"""The evidential loss's keys: schedules, the values the config check refuses, COMPAT_WEIGHT."""
import math

import pytest
import torch

from sfsc.config_checks import ConfigError
from sfsc.engine.defaults import check_config
from sfsc.modeling.losses import build_compat_loss, evidential_loss


@pytest.mark.parametrize("schedule,iteration,epoch,expected", [
    ("constant", 500, 5, 0.2), ("iters", 50, 0, 0.1), ("iters", 500, 0, 0.2),
    ("epochs", 0, 0, 0.0), ("epochs", 0, 5, 0.1), ("epochs", 0, 30, 0.2)])
def test_kl_weight_schedules(sfsc_cfg, schedule, iteration, epoch, expected):
    e = sfsc_cfg.SFSC.EVIDENTIAL
    e.LAMBDA, e.KL_SCHEDULE, e.ANNEAL_ITERS, e.ANNEAL_EPOCHS = 0.2, schedule, 100, 10
    loss = build_compat_loss(sfsc_cfg)
    assert math.isclose(loss.kl_weight(iteration, epoch), expected, abs_tol=1e-12)


@pytest.mark.parametrize("key,value", [("ACTIVATION", "sigmoid"), ("KL_TARGET", "gone"),
                                       ("KL_NORM", "max"), ("KL_SCHEDULE", "cosine"),
                                       ("PRIOR", 0.0)])
def test_unknown_evidential_choices_are_config_errors(sfsc_cfg, key, value):
    setattr(sfsc_cfg.SFSC.EVIDENTIAL, key, value)
    with pytest.raises(ConfigError, match=f"SFSC.EVIDENTIAL.{key}"):
        check_config(sfsc_cfg)


@pytest.mark.parametrize("overrides,message", [
    ({"LOGIT_CLAMP": 0.0}, r"LOGIT_CLAMP must be a finite number > 0 .* got 0\.0"),
    ({"LOGIT_CLAMP": -10.0}, r"LOGIT_CLAMP must be a finite number > 0 .* got -10\.0"),
    ({"LOGIT_CLAMP": float("inf")}, r"LOGIT_CLAMP must be a finite number > 0 .* got inf"),
    ({"LAMBDA": -0.1}, r"LAMBDA \(the KL weight\) must be >= 0, got -0\.1"),
    ({"KL_SCHEDULE": "iters", "ANNEAL_ITERS": 0},
     r"KL_SCHEDULE iters anneals .* over SFSC\.EVIDENTIAL\.ANNEAL_ITERS iters, which is 0: "
     r"set ANNEAL_ITERS > 0, or KL_SCHEDULE constant"),
    ({"KL_SCHEDULE": "epochs", "ANNEAL_EPOCHS": 0},
     r"KL_SCHEDULE epochs anneals .* over SFSC\.EVIDENTIAL\.ANNEAL_EPOCHS epochs, which is 0")])
def test_values_the_loss_cannot_use_are_config_errors(sfsc_cfg, overrides, message):
    # Each of these trained before without a word: a clamp <= 0 flattens every logit, a
    # negative λ rewards the KL, and an anneal over 0 steps was a constant λ.
    for key, value in overrides.items():
        setattr(sfsc_cfg.SFSC.EVIDENTIAL, key, value)
    with pytest.raises(ConfigError, match=message):
        check_config(sfsc_cfg)


def test_the_edges_that_stay_valid(sfsc_cfg):
    e = sfsc_cfg.SFSC.EVIDENTIAL
    e.LAMBDA, e.LOGIT_CLAMP, e.KL_SCHEDULE, e.ANNEAL_ITERS = 0.0, 1e-3, "iters", 1
    check_config(sfsc_cfg)


def test_compat_weight_scales_the_loss_and_not_its_diagnostics(sfsc_cfg):
    torch.manual_seed(0)
    logits = torch.randn(8, 8) * 3
    targets = torch.tensor([0, 0, 3, 3, 5, 5, 7, 7])
    sfsc_cfg.SFSC.COMPAT_WEIGHT = 1.0
    plain, diagnostics = build_compat_loss(sfsc_cfg)(None, logits, None, targets)
    sfsc_cfg.SFSC.COMPAT_WEIGHT = 2.5
    scaled, scaled_diagnostics = build_compat_loss(sfsc_cfg)(None, logits, None, targets)
    e = sfsc_cfg.SFSC.EVIDENTIAL
    direct = evidential_loss(logits, targets, e.LAMBDA, clamp=e.LOGIT_CLAMP,
                             kl_target=e.KL_TARGET, kl_norm=e.KL_NORM)["loss"]
    assert torch.equal(plain, direct)
    assert math.isclose(scaled.item(), 2.5 * direct.item(), rel_tol=1e-6)
    assert scaled_diagnostics == diagnostics
