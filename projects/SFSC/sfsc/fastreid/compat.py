"""Runtime shims that let FastReID 1.4.0 run on Python 3.11, torch 2.x and numpy 2.x.

FastReID's last release predates these versions. Rather than vendoring or editing it, each
breakage is fixed here, from the outside, by the smallest patch that works. Every shim names
the FastReID file it fixes; ``tests/test_fastreid_compat.py`` shows each one is needed (the
unpatched call fails) and that together they are sufficient.

``apply_all()`` is idempotent and runs when ``sfsc`` is imported.
"""
from __future__ import annotations

import collections
import collections.abc
import logging
import sys
import types
from typing import Callable, Dict, Iterable, NamedTuple

logger = logging.getLogger(__name__)


class Shim(NamedTuple):
    name: str
    fixes: str  # the FastReID file (wheel path and line) that breaks without it
    apply: Callable[[], None]


def _collections_abc_aliases() -> None:
    # `from collections import Mapping` was removed in Python 3.10.
    for name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def _torch_six() -> None:
    # torch 2 dropped `torch._six`; FastReID only needs `string_classes` from it.
    if "torch._six" not in sys.modules:
        six = types.ModuleType("torch._six")
        six.string_classes = (str, bytes)
        sys.modules["torch._six"] = six


def _numpy_aliases() -> None:
    # numpy 1.24-1.26 lack `np.bool` (used by eval_cuhk03); numpy 2 brought it back as its own
    # bool type, in which case this changes nothing.
    import numpy as np

    if "bool" not in np.__dict__:
        np.bool = np.bool_


def _optimizer_not_contiguous() -> None:
    # With contiguous=True, FastReID's optimizer steps on flat copies of the parameters whose
    # grads `zero_grad(set_to_none=True)` discards: training silently changes nothing
    # (and AMP asserts "No inf checks were recorded"). Make contiguous=False the default.
    import fastreid.engine.defaults as defaults
    import fastreid.solver as solver
    import fastreid.solver.build as build

    original = build.build_optimizer
    if getattr(original, "_sfsc_patched", False):
        return

    def build_optimizer(cfg, model, contiguous: bool = False):
        return original(cfg, model, contiguous=contiguous)

    build_optimizer._sfsc_patched = True
    build_optimizer.__wrapped__ = original
    for module in (build, solver, defaults):
        module.build_optimizer = build_optimizer


def _cpu_data_loader() -> None:
    # DataLoaderX creates a CUDA stream in __init__ and moves batches to a CUDA device: it
    # crashes on machines without CUDA. Fall back to a plain DataLoader there.
    import torch
    from torch.utils.data import DataLoader

    import fastreid.data.build as build
    from fastreid.data.data_utils import DataLoaderX

    if getattr(build.DataLoaderX, "_sfsc_patched", False):
        return

    class DeviceAwareDataLoader(DataLoaderX):
        _sfsc_patched = True

        def __init__(self, local_rank, **kwargs):
            if torch.cuda.is_available():
                super().__init__(local_rank, **kwargs)
            else:
                kwargs["pin_memory"] = False
                DataLoader.__init__(self, **kwargs)
                self.local_rank = local_rank

        def __iter__(self):
            if torch.cuda.is_available():
                return super().__iter__()
            return DataLoader.__iter__(self)

        def __next__(self):  # only reached on CUDA, where __iter__ returned self
            return super().__next__()

    build.DataLoaderX = DeviceAwareDataLoader


def _no_cython_build() -> None:
    # ReidEvaluator runs `make` inside site-packages at construction and calls sys.exit(1) if
    # the Cython ranker does not compile. SFSC has its own evaluator; keep the stock one usable
    # (pure-Python ranker) without writing into site-packages or exiting.
    import fastreid.evaluation.reid_evaluation as reid_evaluation

    def compile_helper() -> None:
        logger.info("FastReID's Cython ranker is not compiled at runtime; using its Python ranker.")

    reid_evaluation.compile_helper = compile_helper


def _amp_cuda_only() -> None:
    # AMPTrainer asserts CUDA and uses the deprecated torch.cuda.amp API. SFSC's trainer
    # implements AMP itself with torch.amp; route FastReID's DefaultTrainer away from AMPTrainer
    # when CUDA is absent so that SOLVER.AMP.ENABLED on a CPU machine trains in fp32.
    import torch

    import fastreid.engine.defaults as defaults
    from fastreid.engine.train_loop import AMPTrainer, SimpleTrainer

    if getattr(defaults.AMPTrainer, "_sfsc_patched", False):
        return

    class DeviceAwareAMPTrainer(AMPTrainer):
        _sfsc_patched = True

        def __new__(cls, *args, **kwargs):
            if not torch.cuda.is_available():
                logger.warning("SOLVER.AMP.ENABLED needs CUDA; training in fp32.")
                return SimpleTrainer(*args, **kwargs)
            return super().__new__(cls)

        def __init__(self, model, data_loader, optimizer, param_wrapper, grad_scaler=None):
            if grad_scaler is None:
                grad_scaler = torch.amp.GradScaler("cuda")
            super().__init__(model, data_loader, optimizer, param_wrapper, grad_scaler)

    defaults.AMPTrainer = DeviceAwareAMPTrainer


def _metric_printer_same_iteration() -> None:
    # Before the iteration timer has a "time" history (the first 3 iterations), the printer
    # times the ETA from its previous write; PeriodicWriter writes again at an epoch's end, so
    # an epoch that ends in those iterations (1-2 iterations per epoch, a tiny dataset) divides
    # by zero. A second write at the same iteration then prints without an ETA.
    from fastreid.utils.events import CommonMetricPrinter, get_event_storage

    if getattr(CommonMetricPrinter.write, "_sfsc_patched", False):
        return
    write = CommonMetricPrinter.write

    def guarded_write(self) -> None:
        if self._last_write is not None and self._last_write[0] == get_event_storage().iter:
            self._last_write = None
        write(self)

    guarded_write._sfsc_patched = True
    CommonMetricPrinter.write = guarded_write


#: In the order they must run: the import-time fixes first, since later shims import fastreid.
SHIMS = (
    Shim("collections_abc_aliases", "fastreid/evaluation/testing.py:5, fastreid/data/build.py:12",
         _collections_abc_aliases),
    Shim("torch_six", "fastreid/data/build.py:11", _torch_six),
    Shim("numpy_aliases", "fastreid/evaluation/rank.py:69", _numpy_aliases),
    Shim("optimizer_not_contiguous", "fastreid/solver/build.py (build_optimizer)",
         _optimizer_not_contiguous),
    Shim("cpu_data_loader", "fastreid/data/data_utils.py:151 (DataLoaderX)", _cpu_data_loader),
    Shim("no_cython_build", "fastreid/evaluation/reid_evaluation.py (compile_helper)",
         _no_cython_build),
    Shim("amp_cuda_only", "fastreid/engine/train_loop.py (AMPTrainer)", _amp_cuda_only),
    Shim("metric_printer_same_iteration", "fastreid/utils/events.py:220 (CommonMetricPrinter)",
         _metric_printer_same_iteration),
)

_applied: Dict[str, bool] = {}


def apply_all(skip: Iterable[str] = ()) -> None:
    """Apply every shim not named in ``skip`` (idempotent)."""
    skip = set(skip)
    unknown = skip - {s.name for s in SHIMS}
    if unknown:
        raise ValueError(f"unknown shim(s) {sorted(unknown)}; known: {[s.name for s in SHIMS]}")
    for shim in SHIMS:
        if shim.name not in skip and not _applied.get(shim.name):
            shim.apply()
            _applied[shim.name] = True
