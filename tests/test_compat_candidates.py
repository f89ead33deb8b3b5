"""Candidates beyond aggregation, each off by default: in-place distillation (SFSC.DISTILL) and
a compatible-loss warm-up (SFSC.COMPAT_WARMUP), composed with SFSC.COMPAT_WEIGHT."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.config_checks import ConfigError
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import check_config
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.modeling.losses import CompatWarmup, distillation_kl
from sfsc.modeling.switchable import width_context


@pytest.fixture(autouse=True)
def storage():
    with EventStorage(0) as s:  # FastReID's losses log accuracy into the event storage
        yield s


def _batch():
    torch.manual_seed(0)
    return {"images": torch.rand(8, 3, 32, 16) * 255, "targets": torch.arange(8) % 8}


def _model(cfg):
    torch.manual_seed(0)
    return build_model(cfg).train()


def _kl_numpy(student, teacher, t):
    """T² · mean over rows of Σ_c p_c (log p_c − log q_c), p = softmax(teacher / T),
    q = softmax(student / T), written out in float64 numpy."""
    def log_softmax(x):
        x = x / t
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    log_p = log_softmax(teacher.astype(np.float64))
    log_q = log_softmax(student.astype(np.float64))
    return t * t * float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_distillation_kl_is_the_soft_target_kl_times_t_squared(t):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 10, generator=g) * 3, torch.randn(6, 10, generator=g) * 3
    got = float(distillation_kl(student, teacher, t))
    assert got == pytest.approx(_kl_numpy(student.numpy(), teacher.numpy(), t), rel=1e-5)
    dists = torch.distributions
    reference = dists.kl_divergence(dists.Categorical(logits=teacher.double() / t),
                                    dists.Categorical(logits=student.double() / t)).mean()
    assert got == pytest.approx(float(reference) * t * t, rel=1e-5)
    assert float(distillation_kl(teacher, teacher, t)) == pytest.approx(0, abs=1e-6)


def test_distillation_does_not_train_the_teacher():
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    distillation_kl(student, teacher, 2.0).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def _logits(model, images, targets, width):
    with width_context(model, width):
        feat = model.heads(model.backbone(images), targets)["neck_feat"]
    return F.linear(feat, model.heads.weight)  # the full model's classifier (Linear)


def test_each_compatible_task_holds_the_distillation_of_its_width(sfsc_cfg):
    sfsc_cfg.SFSC.DISTILL.WEIGHT = 0.5
    sfsc_cfg.SFSC.DISTILL.TEMPERATURE = 3.0
    model, batch = _model(sfsc_cfg), _batch()
    with torch.no_grad():  # logits of a trained size: at init the KL (~1e-3) is float32 noise
        model.heads.weight.mul_(50)
    tasks = model(batch)
    assert set(tasks["compat@0.25"]) == {"loss_evidential@0.25", "loss_distill@0.25"}
    assert set(tasks["ori"]) == set(_model(sfsc_cfg.clone())(batch)["ori"])  # untouched
    images = model.preprocess_image(batch)
    with torch.no_grad():
        teacher = _logits(model, images, batch["targets"], 1.0).numpy()
        for width in (0.25, 0.5, 0.75):
            student = _logits(model, images, batch["targets"], width).numpy()
            expected = 0.5 * _kl_numpy(student, teacher, 3.0)
            got = float(tasks[f"compat@{width:g}"][f"loss_distill@{width:g}"])
            assert got == pytest.approx(expected, rel=1e-4), width
    # The full model's own BatchNorm gets no gradient from the distillation: the teacher is
    # detached. The sub-model's own BatchNorm does.
    params = dict(model.named_parameters())
    loss = tasks["compat@0.25"]["loss_distill@0.25"]
    full_bn, sub_bn = params["backbone.bn1.bn.1_0.weight"], params["backbone.bn1.bn.0_25.weight"]
    g_full, g_sub = torch.autograd.grad(loss, [full_bn, sub_bn], allow_unused=True,
                                        retain_graph=True)
    assert g_full is None or float(g_full.abs().sum()) == 0
    assert float(g_sub.abs().sum()) > 0


def test_defaults_leave_the_tasks_as_they_were(sfsc_cfg):
    assert sfsc_cfg.SFSC.DISTILL.WEIGHT == 0 and sfsc_cfg.SFSC.COMPAT_WARMUP.ITERS == 0
    model = _model(sfsc_cfg)
    assert model.distill is None and model.compat_warmup is None
    assert set(model(_batch())["compat@0.5"]) == {"loss_evidential@0.5"}


@pytest.mark.parametrize("iters,start,at,factor", [(100, 0.0, 0, 0.0), (100, 0.0, 25, 0.25),
                                                    (100, 0.1, 50, 0.55), (100, 0.1, 100, 1.0),
                                                    (100, 0.1, 816, 1.0), (3, 0.5, 1, 2 / 3)])
def test_the_warmup_factor_rises_linearly_to_one(iters, start, at, factor):
    assert CompatWarmup(iters, start).factor(at) == pytest.approx(factor, abs=1e-12)


def test_iteration_0_of_a_warmup_from_0_trains_the_full_model_alone(sfsc_cfg):
    sfsc_cfg.SFSC.COMPAT_WARMUP.ITERS = 100
    model, batch = _model(sfsc_cfg), _batch()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch], optimizer, None, build_aggregation(sfsc_cfg))
    trainer.iter = 0
    trainer.run_step()
    assert float(trainer.task_grads.grads[1:].abs().sum()) == 0  # the compatible tasks
    # The same step with the original loss alone, by one backward.
    reference.iteration = 0
    params = [p for p in reference.parameters() if p.requires_grad]
    sum(reference(batch)["ori"].values()).backward()
    torch.optim.SGD(params, lr=0.1).step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-6), name


def _values(tasks):
    return {t: {k: float(v.detach()) for k, v in d.items()} for t, d in tasks.items()}


def test_the_warmup_scales_the_compatible_tasks_on_top_of_compat_weight(sfsc_cfg):
    sfsc_cfg.SFSC.DISTILL.WEIGHT = 1.0
    plain = _values(_model(sfsc_cfg)(_batch()))
    sfsc_cfg.SFSC.COMPAT_WEIGHT = 0.5
    sfsc_cfg.SFSC.COMPAT_WARMUP.ITERS = 200
    sfsc_cfg.SFSC.COMPAT_WARMUP.START_FACTOR = 0.2
    model = _model(sfsc_cfg)
    model.iteration = 50  # factor 0.2 + 0.8 · 50 / 200 = 0.4
    scaled = _values(model(_batch()))
    loss, distill = "loss_evidential@0.5", "loss_distill@0.5"
    assert scaled["compat@0.5"][loss] == pytest.approx(
        0.4 * 0.5 * plain["compat@0.5"][loss], rel=1e-6)
    assert scaled["compat@0.5"][distill] == pytest.approx(
        0.4 * plain["compat@0.5"][distill], rel=1e-6)  # COMPAT_WEIGHT: the loss only
    assert scaled["ori"]["loss_cls"] == pytest.approx(plain["ori"]["loss_cls"])
    assert float(model.diagnostics["compat_factor"]) == pytest.approx(0.4)


@pytest.mark.parametrize("keys,match", [
    ({"SFSC.DISTILL.WEIGHT": 1.0, "SFSC.COMPAT_LOSS": "none"}, "DISTILL.WEIGHT > 0"),
    ({"SFSC.DISTILL.WEIGHT": 1.0, "SFSC.OLD_MODEL.WEIGHTS": "old.pth"}, "one-to-one"),
    ({"SFSC.DISTILL.WEIGHT": -1.0}, "DISTILL.WEIGHT must be"),
    ({"SFSC.DISTILL.WEIGHT": 1.0, "SFSC.DISTILL.TEMPERATURE": 0.0}, "TEMPERATURE must be"),
    ({"SFSC.COMPAT_WARMUP.ITERS": -5}, "ITERS must be an integer >= 0"),
    ({"SFSC.COMPAT_WARMUP.ITERS": 10, "SFSC.COMPAT_WARMUP.START_FACTOR": 1.5}, "START_FACTOR"),
    ({"SFSC.COMPAT_WARMUP.ITERS": 10, "SFSC.COMPAT_LOSS": "none"}, "ramps in"),
])
def test_keys_that_cannot_work_are_config_errors(sfsc_cfg, keys, match):
    sfsc_cfg.merge_from_list([x for kv in keys.items() for x in kv])
    with pytest.raises(ConfigError, match=match):
        check_config(sfsc_cfg)
