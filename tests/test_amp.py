"""Mixed precision in the SFSC step: bf16 autocast on CPU, and one loss scale for all tasks.

torch.amp.GradScaler("cpu") runs the same TaskGradientTrainer code as the CUDA fp16 path; the
CUDA kernels themselves (fp16 autocast, GradScaler("cuda")) need a GPU and are not run here.
"""
from itertools import repeat

import pytest
import torch

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.trainer import amp_settings

TASKS = ["ori", "compat@0.25", "compat@0.5", "compat@0.75"]
_UNSCALED = {}  # aggregation -> (parameters, logged scalars, conflicts) after an fp32 step


def _batch(n=8, classes=8):
    g = torch.Generator().manual_seed(0)
    return {"images": torch.rand(n, 3, 32, 16, generator=g) * 255,
            "targets": torch.arange(n) % classes}


def _trainer(cfg, amp_dtype=None, scaler=None, batch_size=8):
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, repeat(_batch(batch_size)), optimizer, None,
                                  build_aggregation(cfg, seed=0), amp_dtype, 5, scaler)
    trainer.iter = 0
    return trainer


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _logged(storage):
    latest = storage.latest()
    return {k: latest[k][0] for k in [f"grad_norm/{t}" for t in TASKS] + ["conflicts"]}


def test_bf16_autocast_trains_on_cpu(sfsc_cfg):
    sfsc_cfg.SOLVER.AMP.ENABLED = True
    sfsc_cfg.SOLVER.AMP.DTYPE = "bfloat16"
    amp_dtype, scaler = amp_settings(sfsc_cfg, torch.device("cpu"))
    assert amp_dtype is torch.bfloat16 and scaler is None
    trainer = _trainer(sfsc_cfg, amp_dtype, batch_size=4)  # ATen's bf16 convolutions are slow
    model = trainer.model
    dtypes = []
    model.backbone.conv1.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    before = _params(model)
    # oneDNN's AMX bf16 kernels in torch 2.14.1 return NaN for some strided convolutions on
    # small maps (here 4x2 inputs; depending on memory left by earlier tests): use ATen's.
    with EventStorage(0), torch.backends.mkldnn.flags(enabled=False):
        trainer.run_step()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            tasks = model(_batch(4))
    assert dtypes[0] == torch.bfloat16  # the forward really ran in bf16
    assert tasks["compat@0.5"]["loss_evidential@0.5"].dtype == torch.float32
    assert torch.isfinite(trainer.task_grads.losses).all()
    assert torch.isfinite(trainer.task_grads.grads).all()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "backbone.conv1.weight" in changed and "heads.weight" in changed


@pytest.mark.parametrize("aggregation,growth_interval",
                         [("sum", 10 ** 9), ("pcgrad", 10 ** 9), ("pcgrad", 1)],
                         ids=["sum-fixed", "pcgrad-fixed", "pcgrad-grows-after-step"])
def test_scaled_step_equals_unscaled_step(sfsc_cfg, aggregation, growth_interval):
    """Every task's loss × 2^12: the same update, and gradient norms / conflicts logged at
    their unscaled values even when update() changes the scale after the step."""
    sfsc_cfg.SFSC.AGGREGATION = aggregation
    if aggregation not in _UNSCALED:
        with EventStorage(0) as storage:
            plain = _trainer(sfsc_cfg)
            plain.run_step()
            _UNSCALED[aggregation] = (dict(plain.model.named_parameters()), _logged(storage),
                                      plain.conflicts_total)
    reference, expected, conflicts = _UNSCALED[aggregation]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=growth_interval)
    with EventStorage(0) as storage:
        scaled = _trainer(sfsc_cfg, scaler=scaler)
        scaled.run_step()
        logged = _logged(storage)
        assert storage.latest()["loss_scale"][0] == 2.0 ** 12
    assert scaler.get_scale() == 2.0 ** (12 if growth_interval > 1 else 13)
    for name, p in scaled.model.named_parameters():
        assert torch.allclose(p, reference[name], rtol=1e-5, atol=1e-7), name
    assert logged == pytest.approx(expected, rel=1e-5)
    assert scaled.conflicts_total == conflicts


def test_inf_gradient_is_skipped_by_the_scaler(sfsc_cfg):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    trainer = _trainer(sfsc_cfg, scaler=scaler)
    model = trainer.model
    hook = model.heads.weight.register_hook(lambda g: g * float("inf"))  # overflow, as in fp16
    before = _params(model)
    with EventStorage(0) as storage:
        trainer.run_step()
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
        assert scaler.get_scale() == 2.0 ** 11  # GradScaler skipped the step and backed off
        assert trainer.skipped_total == 0 and trainer.conflicts_total == 0
        assert "grad_norm/ori" not in storage.latest()  # no inf / NaN norms logged
        hook.remove()
        trainer.iter = storage.iter = 1
        trainer.run_step()
        assert not torch.equal(model.heads.weight, before["heads.weight"])
        assert "grad_norm/ori" in storage.latest()
