"""The SFSC step: one gradient per task, aggregation by config, one optimizer update; one PCGrad
step with Adam equals the same step written out independently."""
import copy
import itertools

import numpy as np
import pytest
import torch

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import PCGradAggregation, build_aggregation
from sfsc.engine.task_gradients import TaskGradients
from sfsc.engine.task_step import NonFiniteTrainingError, TaskGradientTrainer
from sfsc.modeling.switchable import width_context


@pytest.fixture(autouse=True)
def storage():
    with EventStorage(0) as s:  # FastReID's losses log accuracy into the event storage
        yield s


def _batch(n=8, classes=8):
    torch.manual_seed(0)
    return {"images": torch.rand(n, 3, 32, 16) * 255, "targets": torch.arange(n) % classes}


def _model(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    return model


def test_tasks_are_ori_plus_one_per_sub_width(sfsc_cfg):
    tasks = _model(sfsc_cfg)(_batch())
    assert list(tasks) == ["ori", "compat@0.25", "compat@0.5", "compat@0.75"]
    assert set(tasks["compat@0.25"]) == {"loss_evidential@0.25"}


def test_per_task_gradients_equal_separate_backwards(sfsc_cfg):
    model = _model(sfsc_cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    tasks = model(_batch())
    losses = [sum(d.values()) for d in tasks.values()]
    expected = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        expected.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                   for g, p in zip(grads, params)]))
    buffer = TaskGradients(params, len(losses)).compute(losses)
    assert torch.allclose(buffer, torch.stack(expected), atol=1e-6)
    # A sub-model's task leaves the other widths' BatchNorms alone.
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    offsets = itertools.accumulate([0] + [p.numel() for p in params])
    spans = dict(zip(names, zip(offsets, [p.numel() for p in params])))
    start, size = spans["backbone.bn1.bn.1_0.weight"]
    assert buffer[1, start:start + size].abs().sum() == 0  # compat@0.25
    assert buffer[0, start:start + size].abs().sum() > 0  # ori, at width 1.0


def _one_step(cfg, batch):
    model = _model(cfg)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch] * 2, optimizer, None, build_aggregation(cfg))
    trainer.iter = 0
    trainer.run_step()
    return model, trainer


def test_sum_aggregation_equals_backward_of_summed_loss(sfsc_cfg):
    sfsc_cfg.SFSC.AGGREGATION = "sum"
    batch = _batch()
    model, _ = _one_step(sfsc_cfg, batch)
    reference = _model(sfsc_cfg)
    optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=0.1)
    total = sum(sum(d.values()) for d in reference(batch).values())
    total.backward()
    optimizer.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_pcgrad_step_changes_weights_and_logs_conflicts(sfsc_cfg):
    before = {n: p.detach().clone() for n, p in _model(sfsc_cfg).named_parameters()}
    model, trainer = _one_step(sfsc_cfg, _batch())
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "backbone.conv1.weight" in changed and "heads.weight" in changed
    assert trainer.task_names == ["ori", "compat@0.25", "compat@0.5", "compat@0.75"]
    grads = trainer.task_grads.grads.double()
    gram = grads @ grads.t()
    t = gram.shape[0]
    expected = sum(int(gram[a, b] < 0) for a in range(t) for b in range(a + 1, t))
    assert trainer.conflicts_total == expected


@pytest.mark.parametrize("loss,aggregation",
                         list(itertools.product(["evidential", "bct", "asymmetric", "none"],
                                                ["sum", "pcgrad"])))
def test_loss_and_aggregation_are_independent_keys(sfsc_cfg, loss, aggregation):
    sfsc_cfg.SFSC.COMPAT_LOSS = loss
    sfsc_cfg.SFSC.AGGREGATION = aggregation
    sfsc_cfg.SFSC.WIDTHS = [0.5]
    model, trainer = _one_step(sfsc_cfg, _batch())
    assert len(trainer.task_names) == (1 if loss == "none" else 2)
    assert trainer.aggregation.name == aggregation


def test_nonfinite_steps_are_skipped_then_stop_training(sfsc_cfg):
    sfsc_cfg.SFSC.MAX_NONFINITE_STEPS = 2
    model = _model(sfsc_cfg)
    bad = _batch()
    bad["images"][0, 0, 0, 0] = float("nan")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [bad] * 3, optimizer, None,
                                  build_aggregation(sfsc_cfg), max_nonfinite=2)
    before = model.backbone.conv1.weight.detach().clone()
    trainer.iter = 0
    trainer.run_step()  # skipped, counted
    assert trainer.skipped_total == 1
    assert torch.equal(model.backbone.conv1.weight, before)
    with pytest.raises(NonFiniteTrainingError, match="2 consecutive"):
        trainer.run_step()


def _bn_buffers(model):
    return {n: b.detach().clone() for n, b in model.named_buffers()
            if n.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_a_skipped_step_leaves_batchnorm_statistics_as_they_were(sfsc_cfg):
    model = _model(sfsc_cfg)
    bad, good = _batch(), _batch()
    bad["images"][0, 0, 0, 0] = float("nan")  # one pixel: every batch statistic is NaN
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [bad, good, good], optimizer, None,
                                  build_aggregation(sfsc_cfg))
    before = _bn_buffers(model)
    # Every width's BatchNorms and the BNNeck's, with the counts.
    assert {"backbone.bn1.bn.0_25.running_mean", "backbone.bn1.bn.1_0.running_var",
            "heads.bottleneck.1.bn.0_5.num_batches_tracked"} <= set(before)
    trainer.iter = 0
    trainer.run_step()
    assert trainer.skipped_total == 1
    after_skip = _bn_buffers(model)
    assert all(torch.equal(after_skip[n], before[n]) for n in before)
    for trainer.iter in (1, 2):
        trainer.run_step()
    assert trainer.skipped_total == 1
    stats = _bn_buffers(model)
    bad_stats = [n for n, b in stats.items() if not torch.isfinite(b.float()).all()]
    assert not bad_stats
    assert not torch.equal(stats["backbone.bn1.bn.1_0.running_mean"],
                           before["backbone.bn1.bn.1_0.running_mean"])  # the good steps count
    model.eval()
    with torch.no_grad():
        for width in model.widths:
            with width_context(model, width):
                assert torch.isfinite(model(good)).all(), width


def _reference_pcgrad_adam_step(model, batch, seed, adam, eps=1e-12):
    """One SFSC step written out: a gradient per task (torch.autograd.grad), Algorithm 1 on the
    flattened float64 gradients in the visiting orders that np.random.default_rng(seed) draws,
    the sum, one torch.optim.Adam step. -> number of conflicting task pairs."""
    model.train()
    model.iteration = 0
    params = [p for p in model.parameters() if p.requires_grad]
    tasks = model(batch)
    flat = []
    for d in tasks.values():
        grads = torch.autograd.grad(sum(d.values()), params, retain_graph=True,
                                    allow_unused=True)
        flat.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten().double()
                               for g, p in zip(grads, params)]))
    t = len(flat)
    rng = np.random.default_rng(seed)
    update = torch.zeros_like(flat[0])
    for a in range(t):
        g_a = flat[a].clone()
        for b in rng.permutation([b for b in range(t) if b != a]):
            dot = torch.dot(g_a, flat[b])
            if dot < 0:
                g_a -= dot / (flat[b].dot(flat[b]) + eps) * flat[b]
        update += g_a
    offset = 0
    for p in params:
        p.grad = update[offset:offset + p.numel()].view_as(p).float()
        offset += p.numel()
    torch.optim.Adam(params, **adam).step()
    return sum(int(flat[a].dot(flat[b]) < 0) for a in range(t) for b in range(a + 1, t))


# Adam's first step is lr·g/(|g| + eps): with the default eps (1e-8) a gradient entry that
# rounds to another sign moves by 2·lr. A larger eps keeps the step continuous in g, so the
# comparison tests the aggregated gradient, not rounding near zero.
ADAM = {"lr": 1e-3, "eps": 1e-4}


def test_pcgrad_step_equals_a_step_written_out(sfsc_cfg):
    sfsc_cfg.SFSC.WIDTHS = [0.25, 0.5]
    torch.manual_seed(1)  # a draw whose three tasks all conflict: every visiting order matters
    model = build_model(sfsc_cfg)
    batch = {"images": torch.rand(8, 3, 32, 16) * 255, "targets": torch.arange(8)}
    reference, other_order = copy.deepcopy(model), copy.deepcopy(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], **ADAM)
    # The seed fixes the orders; the reference redraws them from np.random.default_rng(seed).
    trainer = TaskGradientTrainer(model, [batch], optimizer, None, PCGradAggregation(seed=5))
    trainer.iter = 0
    trainer.run_step()
    conflicts = _reference_pcgrad_adam_step(reference, batch, 5, ADAM)
    assert conflicts == trainer.conflicts_total == 3
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-6), name
    for (name, b), c in zip(model.named_buffers(), reference.buffers()):
        assert torch.allclose(b, c, rtol=0, atol=1e-6), name
    # The comparison tells visiting orders apart (seed 0 draws other orders than seed 5).
    _reference_pcgrad_adam_step(other_order, batch, 0, ADAM)
    diff = max(float((p - q).detach().abs().max())
               for p, q in zip(model.parameters(), other_order.parameters()))
    assert diff > 1e-5
