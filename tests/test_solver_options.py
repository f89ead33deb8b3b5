"""FastReID's optimizer options under SFSC's task-gradient step: SOLVER.CLIP_GRADIENTS clips the
aggregated update of each parameter; MODEL.FREEZE_LAYERS / SOLVER.FREEZE_ITERS hold the named
modules (weights and BatchNorm statistics) for the first iterations, and names a switchable
model does not have are refused."""
import pytest
import torch

from fastreid.engine import hooks
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.config_checks import ConfigError
from sfsc.engine import SFSCTrainer
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import check_config
from sfsc.engine.task_step import TaskGradientTrainer


def _batch(n=8, classes=8):
    torch.manual_seed(0)
    return {"images": torch.rand(n, 3, 32, 16) * 255, "targets": torch.arange(n) % classes}


def _sgd(cfg, lr):
    # Plain SGD, one learning rate everywhere, no weight decay: a step is -lr * p.grad.
    s = cfg.SOLVER
    s.OPT, s.BASE_LR, s.MOMENTUM, s.NESTEROV = "SGD", lr, 0.0, False
    s.WEIGHT_DECAY = s.WEIGHT_DECAY_NORM = s.WEIGHT_DECAY_BIAS = 0.0
    s.HEADS_LR_FACTOR = s.BIAS_LR_FACTOR = 1.0


def _trainer(cfg, steps):
    """The task-gradient step with the optimizer FastReID builds from ``cfg``."""
    check_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer, wrapper = SFSCTrainer.build_optimizer(cfg, model)
    return TaskGradientTrainer(model, [_batch()] * steps, optimizer, wrapper,
                               build_aggregation(cfg))


def _one_step_update(cfg):
    trainer = _trainer(cfg, 1)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    with EventStorage(0):
        trainer.iter = 0
        trainer.run_step()
    return {n: before[n] - p.detach() for n, p in trainer.model.named_parameters()}


def test_clip_gradients_clips_each_parameters_aggregated_gradient(sfsc_cfg):
    # A large step: the update, read back as a difference of float32 weights, is then exact
    # to float32 precision of the update itself rather than of the weights.
    lr = 1e3
    _sgd(sfsc_cfg, lr)
    plain = _one_step_update(sfsc_cfg)  # lr * the aggregated gradient
    norms = torch.stack([d.norm() / lr for d in plain.values()])
    clip = float(norms[norms > 0].median())  # half of the moving parameters are clipped
    c = sfsc_cfg.SOLVER.CLIP_GRADIENTS
    c.ENABLED, c.CLIP_TYPE, c.CLIP_VALUE, c.NORM_TYPE = True, "norm", clip, 2.0
    clipped = _one_step_update(sfsc_cfg)
    shrunk = 0
    for name, d in plain.items():
        # torch.nn.utils.clip_grad_norm_ on one parameter, written out
        expected = d * min(1.0, clip / (float(d.norm()) / lr + 1e-6))
        torch.testing.assert_close(clipped[name], expected, rtol=1e-5, atol=1e-4)
        shrunk += bool(d.norm() / lr > clip * 1.01)
    assert shrunk >= 5 and (norms > 0).sum() - shrunk >= 5


def test_freeze_layers_holds_the_backbone_then_releases_it(sfsc_cfg):
    _sgd(sfsc_cfg, 0.01)
    sfsc_cfg.MODEL.FREEZE_LAYERS = ["backbone"]
    sfsc_cfg.SOLVER.FREEZE_ITERS = 2
    trainer = _trainer(sfsc_cfg, 3)
    model = trainer.model
    trainer.register_hooks([hooks.LayerFreeze(model, ["backbone"], 2)])  # as DefaultTrainer
    states = []
    trainer.register_hooks([hooks.CallbackHook(after_step=lambda t: states.append(
        {k: v.detach().clone() for k, v in model.state_dict().items()}))])
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer.train(0, 1, 3)
    backbone = [k for k in start if k.startswith("backbone.")]
    heads = [k for k in start if k.startswith("heads.") and start[k].is_floating_point()]
    stats = [k for k in backbone if k.endswith(("running_mean", "running_var"))]
    assert stats and heads
    for state in states[:2]:  # frozen: weights and BatchNorm statistics of every width
        assert all(torch.equal(state[k], start[k]) for k in backbone)
    assert any(not torch.equal(states[0][k], start[k]) for k in heads)  # the rest trains
    assert any(not torch.equal(states[2][k], start[k]) for k in backbone if k not in stats)
    assert any(not torch.equal(states[2][k], start[k]) for k in stats)
    assert model.backbone.training


@pytest.mark.parametrize("layers,iters,message", [
    (["backbone.layer1"], 10, r"MODEL.FREEZE_LAYERS \['backbone.layer1'\]: 'backbone.layer1' "
                              r"is not a top-level module .* one of \['backbone', 'heads'\]"),
    (["backbone"], 0, r"MODEL.FREEZE_LAYERS \['backbone'\] freezes nothing while "
                      r"SOLVER.FREEZE_ITERS is 0")])
def test_freeze_settings_that_would_do_nothing_or_half_are_refused(sfsc_cfg, layers, iters,
                                                                  message):
    sfsc_cfg.MODEL.FREEZE_LAYERS, sfsc_cfg.SOLVER.FREEZE_ITERS = layers, iters
    with pytest.raises(ConfigError, match=message):
        check_config(sfsc_cfg)
