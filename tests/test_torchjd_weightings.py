"""torchjd's Gramian weightings as SFSC.AGGREGATION, checked against torchjd called directly:
our pcgrad is torchjd's PCGrad under the same visiting orders; each weighting's update is
(T·w / Σw) @ G with w from torchjd, in the aggregation and in a training step; stateful ones
resume exactly; unknown names and missing solvers fail at config time."""
import copy
import io
import os

import numpy as np
import pytest
import torch
import torchjd.aggregation as tjd

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.config_checks import ConfigError
from sfsc.engine.aggregation import PCGradAggregation, build_aggregation
from sfsc.engine.defaults import check_config
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.torchjd_weightings import WEIGHTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each exposed name and torchjd's weighting built directly, with the config's default values.
DIRECT = {
    "mgda": lambda: tjd.MGDAWeighting(),
    "imtl_g": lambda: tjd.IMTLGWeighting(),
    "aligned_mtl": lambda: tjd.AlignedMTLWeighting(),
    "upgrad": lambda: tjd.UPGradWeighting(),
    "dualproj": lambda: tjd.DualProjWeighting(),
    "cagrad": lambda: tjd.CAGradWeighting(c=0.4),
    "fairgrad": lambda: tjd.FairGradWeighting(alpha=1.0),
    "gradvac": lambda: tjd.GradVacWeighting(),
    "pcd": lambda: tjd.PCDWeighting(tau=0.02),
}

# Four gradients, several pairs conflicting (cosines down to -0.5).
CONFLICTING = torch.tensor([[1.0, 0.0, 0.1, 0.3], [-0.5, 0.866, 0.2, 0.1],
                            [-0.5, -0.866, 0.3, -0.2], [0.2, 0.1, -0.9, 0.5]],
                           dtype=torch.float64)


def _direct_weights(name, gram, seed=0):
    """torchjd's weights for ``gram``, its random draws (GradVac) from torch seed ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DIRECT[name]()(gram)


def _cfg(sfsc_cfg, name, **weighting):
    sfsc_cfg.SFSC.AGGREGATION = name
    for key, value in weighting.items():
        sfsc_cfg.SFSC.WEIGHTING[key] = value
    return sfsc_cfg


def test_every_exposed_name_is_checked_here():
    assert set(DIRECT) == set(WEIGHTINGS)


class _Orders:
    """Stands in for PCGradAggregation's generator: hands out given visiting orders."""

    def __init__(self, orders):
        self.orders = list(orders)

    def permutation(self, others):
        order = self.orders.pop(0)
        assert sorted(order) == sorted(others.tolist())
        return np.array(order)


@pytest.mark.parametrize("seed", range(4))
def test_our_pcgrad_is_torchjds_pcgrad_under_the_same_visiting_orders(seed):
    g = torch.Generator().manual_seed(seed)
    grads = torch.cat([CONFLICTING, torch.randn(4, 20, generator=g, dtype=torch.float64)], 1)
    gram = grads @ grads.t()
    # torchjd draws torch.randperm(T) for each task and skips the task itself.
    torch.manual_seed(seed)
    orders = [[j for j in torch.randperm(4).tolist() if j != i] for i in range(4)]
    torch.manual_seed(seed)
    expected = tjd.PCGradWeighting()(gram)
    ours = PCGradAggregation()
    ours.rng = _Orders(orders)
    got = ours.coefficients(gram)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)
    # The orders matter here: the reversed ones give other weights.
    reversed_orders = PCGradAggregation()
    reversed_orders.rng = _Orders([o[::-1] for o in orders])
    assert not torch.allclose(reversed_orders.coefficients(gram), expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_each_weighting_gives_torchjds_weights_rescaled_to_sum_to_t(sfsc_cfg, name):
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([[1.0], [3.0], [0.5], [2.0]], dtype=torch.float64)
    for grads in (CONFLICTING, torch.randn(4, 40, generator=g, dtype=torch.float64) * scales):
        gram = grads @ grads.t()
        weights = _direct_weights(name, gram)
        expected = weights * (4 / weights.sum())
        aggregation = build_aggregation(_cfg(sfsc_cfg, name), seed=0)
        assert aggregation.name == name
        update = aggregation(grads)
        assert torch.allclose(aggregation.last_coefficients, expected, rtol=1e-9, atol=1e-12)
        assert float(aggregation.last_coefficients.sum()) == pytest.approx(4)
        assert torch.allclose(update, expected @ grads, rtol=1e-9, atol=1e-12)
        # Every weighting acts on these (none returns the plain sum on both).
        if grads is not CONFLICTING:
            assert not torch.allclose(expected, torch.ones(4, dtype=torch.float64),
                                  atol=1e-3) or name == "dualproj"


def test_a_weighting_without_a_direction_gives_no_update(sfsc_cfg):
    aggregation = build_aggregation(_cfg(sfsc_cfg, "imtl_g"))
    zero = torch.zeros(3, 5)  # IMTL-G's weights are 0 when every gradient is
    assert torch.equal(aggregation(zero), torch.zeros(5))
    assert torch.equal(aggregation.last_coefficients, torch.zeros(3, dtype=torch.float64))


@pytest.fixture(scope="module")
def step_setup():
    """A small switchable model, a batch, and its four task gradients (T, P) float64, taken
    with torch.autograd.grad outside the trainer."""
    import sfsc
    from fastreid.config import get_cfg

    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-SFSC.yml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", 8,
                         "MODEL.HEADS.EMBEDDING_DIM", 32, "INPUT.SIZE_TRAIN", [32, 16],
                         "SOLVER.AMP.ENABLED", False])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = {"images": torch.rand(8, 3, 32, 16) * 255, "targets": torch.arange(8) % 8}
    reference = copy.deepcopy(model)
    params = [p for p in reference.parameters() if p.requires_grad]
    with EventStorage(0):
        tasks = reference(batch)
    rows = []
    for d in tasks.values():
        grads = torch.autograd.grad(sum(d.values()), params, retain_graph=True,
                                    allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten().double()
                               for g, p in zip(grads, params)]))
    return cfg, model, batch, torch.stack(rows)


# A closed form, a QP solver, and PCD, whose first task is the primary one (the full model).
@pytest.mark.parametrize("name", ["imtl_g", "upgrad", "pcd"])
def test_a_training_step_applies_torchjds_weights_to_the_task_gradients(step_setup, name):
    cfg, model, batch, grads = step_setup
    cfg = cfg.clone()
    cfg.SFSC.AGGREGATION = name
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch], optimizer, None, build_aggregation(cfg, 0))
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
        logged = storage.latest()
    weights = _direct_weights(name, grads @ grads.t())
    expected = weights * (4 / weights.sum())
    assert torch.allclose(trainer.task_grads.flat.double(), expected @ grads,
                          rtol=1e-4, atol=1e-7)
    # The weights each task got are logged beside its gradient norm.
    for task, w in zip(trainer.task_names, expected.tolist()):
        assert logged[f"task_weight/{task}"][0] == pytest.approx(w, rel=1e-5)


def _grams(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(4, 12, generator=g, dtype=torch.float64) for _ in range(count)]
    return [x @ x.t() for x in grads]


@pytest.mark.parametrize("name,weighting", [("gradvac", {}), ("pcd", {}),
                                            ("imtl_g", {"EMA": 0.5})])
def test_stateful_weightings_resume_exactly_and_leave_the_global_rng_alone(sfsc_cfg, name,
                                                                          weighting):
    cfg = _cfg(sfsc_cfg, name, **weighting)
    grams = _grams(6)
    rng_before = torch.get_rng_state()
    uninterrupted = build_aggregation(cfg, seed=3)
    expected = [uninterrupted.coefficients(g) for g in grams]
    assert torch.equal(torch.get_rng_state(), rng_before)
    first = build_aggregation(cfg, seed=3)
    for g in grams[:3]:
        first.coefficients(g)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as a checkpoint holds it
    buffer.seek(0)
    resumed = build_aggregation(cfg, seed=3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert all(torch.equal(resumed.coefficients(g), e) for g, e in zip(grams[3:], expected[3:]))
    # What the state carries changes the weights: a fresh start does not give them.
    fresh = build_aggregation(cfg, seed=3)
    assert not all(torch.allclose(fresh.coefficients(g), e, atol=1e-9)
                   for g, e in zip(grams[3:], expected[3:]))


def test_imtl_g_with_ema_is_crmogms_average_of_torchjds_weights(sfsc_cfg):
    grams = _grams(3, seed=1)
    aggregation = build_aggregation(_cfg(sfsc_cfg, "imtl_g", EMA=0.5))
    previous = None
    for gram in grams:
        w = tjd.IMTLGWeighting()(gram)
        previous = w if previous is None else 0.5 * previous + 0.5 * w
        expected = previous * (4 / previous.sum())
        assert torch.allclose(aggregation.coefficients(gram), expected, rtol=1e-12)


def test_a_state_of_another_weighting_is_refused(sfsc_cfg):
    saved = build_aggregation(_cfg(sfsc_cfg, "pcd")).state_dict()
    with pytest.raises(ValueError, match="'pcd'"):
        build_aggregation(_cfg(sfsc_cfg, "gradvac")).load_state_dict(saved)


def test_unknown_names_and_bad_keys_fail_at_config_time(sfsc_cfg):
    sfsc_cfg.SFSC.AGGREGATION = "nash_mtl"
    with pytest.raises(ConfigError, match="'nash_mtl' is not one of .*'imtl_g'.*'upgrad'"):
        check_config(sfsc_cfg)
    sfsc_cfg.SFSC.AGGREGATION = "cagrad"
    sfsc_cfg.SFSC.WEIGHTING.CAGRAD_C = -1.0
    with pytest.raises(ConfigError, match="CAGRAD_C"):
        check_config(sfsc_cfg)


@pytest.mark.parametrize("name,module,extra", [("upgrad", "quadprog", "quadprog-projector"),
                                               ("cagrad", "cvxpy", "cagrad"),
                                               ("fairgrad", "scipy", "fairgrad")])
def test_a_missing_solver_is_a_config_error_naming_the_extra(sfsc_cfg, monkeypatch, name,
                                                             module, extra):
    import torchjd._mixins

    real = torchjd._mixins.find_spec  # what torchjd asks before building a weighting
    monkeypatch.setattr(torchjd._mixins, "find_spec",
                        lambda m: None if m == module else real(m))
    sfsc_cfg.SFSC.AGGREGATION = name
    with pytest.raises(ConfigError, match=rf"{extra}.*pip install 'torchjd\[{extra}\]==0.18.0'"):
        check_config(sfsc_cfg)
    sfsc_cfg.SFSC.AGGREGATION = "mgda"  # needs no extra
    check_config(sfsc_cfg)


def test_a_checkpoint_carries_a_stateful_weighting_into_the_resumed_step(step_setup, tmp_path):
    from sfsc.fastreid.checkpoint import SFSCCheckpointer

    cfg, model, batch, _ = step_setup
    cfg = cfg.clone()
    cfg.SFSC.AGGREGATION = "pcd"  # its moving average of the squared norms is its state

    def trainer_of(net):
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
        return TaskGradientTrainer(net, [batch] * 3, optimizer, None, build_aggregation(cfg, 0))

    trained = trainer_of(copy.deepcopy(model))
    with EventStorage(0):
        for trained.iter in range(2):
            trained.run_step()
    SFSCCheckpointer(trained.model, str(tmp_path), task_step=trained).save("model_0001")
    resumed = trainer_of(copy.deepcopy(model))
    SFSCCheckpointer(resumed.model, str(tmp_path), task_step=resumed).load(
        str(tmp_path / "model_0001.pth"))
    ema = resumed.aggregation.weighting._sq_norm_ema
    assert ema is not None and torch.equal(ema, trained.aggregation.weighting._sq_norm_ema)
    assert int(resumed.aggregation.weighting._n_steps) == 2
    with EventStorage(2):  # the third step: the same weights as the uninterrupted run's
        for trainer in (trained, resumed):
            trainer.iter = 2
            trainer.run_step()
    assert torch.equal(resumed.aggregation.last_coefficients,
                       trained.aggregation.last_coefficients)


def test_under_a_loss_scale_the_weighting_sees_the_unscaled_gradients(step_setup):
    """Two steps of PCD under GradScaler, the scale doubling after the first: its moving
    average of the squared norms, and so its weights, are those of two fp32 steps."""
    cfg, model, batch, _ = step_setup
    cfg = cfg.clone()
    cfg.SFSC.AGGREGATION = "pcd"
    runs = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=1)):
        net = copy.deepcopy(model)
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01)
        trainer = TaskGradientTrainer(net, [batch] * 2, optimizer, None,
                                      build_aggregation(cfg, 0), grad_scaler=scaler)
        with EventStorage(0):
            for trainer.iter in range(2):
                trainer.run_step()
        runs.append(trainer)
    plain, scaled = runs
    assert scaled.grad_scaler.get_scale() == 2.0 ** 14  # it grew after each step
    assert torch.allclose(scaled.aggregation.weighting._sq_norm_ema,
                          plain.aggregation.weighting._sq_norm_ema, rtol=1e-4)
    assert torch.allclose(scaled.aggregation.last_coefficients,
                          plain.aggregation.last_coefficients, rtol=1e-4, atol=1e-6)
