"""Probe one FastReID breakage in a fresh interpreter: ``python shim_probe.py PROBE [SKIP]``.

Applies every SFSC shim except SKIP, runs the probe that exercises the FastReID code the
skipped shim fixes, and prints ``OK`` or ``FAIL <exception>``. Used by test_fastreid_compat.py.
"""
import importlib.util
import os
import sys

COMPAT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "projects", "SFSC", "sfsc", "fastreid", "compat.py")


def probe_imports():
    import fastreid.data  # noqa: F401
    import fastreid.engine  # noqa: F401
    import fastreid.evaluation  # noqa: F401


def probe_numpy_aliases():
    import numpy as np

    from fastreid.evaluation.rank import eval_cuhk03

    rng = np.random.default_rng(0)
    dist = rng.random((4, 12))
    eval_cuhk03(dist, np.arange(4), np.arange(12) % 4, np.zeros(4), np.ones(12), 5)


def _tiny_training(optimizer_builder):
    import torch

    from fastreid.config import get_cfg

    cfg = get_cfg()
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    optimizer, _ = optimizer_builder(cfg, model)
    before = model[0].weight.detach().clone()
    for _ in range(2):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    change = (model[0].weight.detach() - before).abs().max().item()
    if change == 0:
        raise AssertionError("two optimizer steps left the weights unchanged")


def probe_optimizer():
    from fastreid.solver import build_optimizer

    _tiny_training(build_optimizer)


def probe_data_loader():
    import torch

    from fastreid.data.build import build_reid_train_loader
    from fastreid.data.samplers import TrainingSampler

    data = [{"images": torch.zeros(3), "targets": i} for i in range(8)]
    batch = next(iter(build_reid_train_loader(train_set=data, sampler=TrainingSampler(8),
                                              total_batch_size=4, num_workers=0)))
    assert batch["images"].shape == (4, 3)


def probe_cython_build():
    import subprocess

    from fastreid.config import get_cfg
    from fastreid.evaluation import reid_evaluation

    calls = []

    def fake_run(cmd, *args, **kwargs):  # never build inside site-packages for real
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 2)

    subprocess.run = fake_run
    try:
        reid_evaluation.ReidEvaluator(get_cfg(), num_query=1)
    except SystemExit as e:
        raise AssertionError(f"ReidEvaluator exited ({e.code}) after running {calls}") from None
    assert not calls, calls


def probe_amp_trainer():
    import torch

    from fastreid.engine import defaults

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, batch):
            return {"loss": self.linear(batch).pow(2).mean()}

    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = defaults.AMPTrainer(model, [torch.randn(8, 4)] * 4, optimizer, None)
    from fastreid.utils.events import EventStorage

    with EventStorage(0):
        trainer.iter = 0
        trainer.run_step()


def probe_metric_printer():
    from fastreid.utils.events import CommonMetricPrinter, EventStorage

    printer = CommonMetricPrinter(max_iter=10)
    with EventStorage(0) as storage:
        storage.iter, storage.epoch = 1, 0  # PeriodicWriter writes after the step and the epoch
        storage.put_scalar("loss", 1.0)
        printer.write()
        printer.write()


def probe_numpy_has_bool():
    import numpy as np

    assert "bool" in np.__dict__, f"numpy {np.__version__} has no np.bool"


def probe_all():
    for name, probe in PROBES.items():
        if name not in ("all", "numpy_has_bool"):
            probe()


PROBES = {
    "all": probe_all,
    "numpy_has_bool": probe_numpy_has_bool,
    "imports": probe_imports,
    "numpy_aliases": probe_numpy_aliases,
    "optimizer": probe_optimizer,
    "data_loader": probe_data_loader,
    "cython_build": probe_cython_build,
    "amp_trainer": probe_amp_trainer,
    "metric_printer": probe_metric_printer,
}

if __name__ == "__main__":
    probe, skip = sys.argv[1], sys.argv[2:]
    try:
        # Loaded by path: importing the sfsc package would apply every shim.
        spec = importlib.util.spec_from_file_location("compat", COMPAT)
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        compat.apply_all(skip=skip)
        PROBES[probe]()
        print("OK")
    except BaseException as e:  # report, do not crash: the test reads the outcome
        print(f"FAIL {type(e).__name__}: {e}")
