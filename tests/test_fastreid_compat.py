"""Each FastReID shim is needed (the FastReID code it fixes fails without it) and together they
are sufficient (the same code works with all of them). Every probe runs in a fresh interpreter,
since a shim, once applied, cannot be undone."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim_probe.py")

# shim skipped -> (probe that exercises the FastReID code it fixes, text of the failure
# or a tuple of the texts it may take)
CASES = {
    "collections_abc_aliases": ("imports", "cannot import name 'Mapping'"),
    "torch_six": ("imports", "No module named 'torch._six'"),
    "numpy_aliases": ("numpy_aliases", "has no attribute 'bool'"),
    "optimizer_not_contiguous": ("optimizer", "left the weights unchanged"),
    # DataLoaderX asks for a CUDA stream; CUDA_VISIBLE_DEVICES="" hides every GPU. How torch
    # says so depends on the machine: no driver, a driver with no visible device, a CPU build.
    "cpu_data_loader": ("data_loader", ("RuntimeError: Found no NVIDIA driver",
                                        "RuntimeError: No CUDA GPUs are available",
                                        "AssertionError: Torch not compiled with CUDA enabled")),
    "no_cython_build": ("cython_build", "ReidEvaluator exited"),
    "amp_cuda_only": ("amp_trainer", "CUDA is required"),
    "metric_printer_same_iteration": ("metric_printer", "ZeroDivisionError"),
}


def _run(probe, skip=None):
    args = [sys.executable, PROBE, probe] + ([skip] if skip else [])
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("OK", "FAIL"))]
    assert lines, out.stdout + out.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def outcomes():
    jobs = [("all", None), ("numpy_has_bool", "numpy_aliases")]
    jobs += [(probe, skip) for skip, (probe, _) in CASES.items()]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda job: _run(*job), jobs))
    return dict(zip(jobs, results))


@pytest.mark.parametrize("skip", sorted(CASES))
def test_shim_is_needed(outcomes, skip):
    probe, message = CASES[skip]
    result = outcomes[(probe, skip)]
    if skip == "numpy_aliases" and outcomes[("numpy_has_bool", skip)] == "OK":
        # numpy >= 2 defines np.bool again: the shim must then be a no-op.
        assert result == "OK"
        return
    assert result.startswith("FAIL"), f"without {skip}, probe {probe} passed"
    alternatives = message if isinstance(message, tuple) else (message,)
    assert any(m in result for m in alternatives), result


def test_shims_are_sufficient(outcomes):
    assert outcomes[("all", None)] == "OK"


def test_every_shim_names_the_fastreid_file_it_fixes():
    from sfsc.fastreid import compat

    assert {s.name for s in compat.SHIMS} == set(CASES)
    for shim in compat.SHIMS:
        assert shim.fixes.startswith("fastreid/")


def test_the_trainer_optimizer_steps_on_the_model_parameters(sfsc_cfg):
    """SFSCTrainer inherits FastReID's build_optimizer; through the shim the optimizer holds the
    model's own parameters, not flat contiguous copies whose gradients are discarded."""
    import torch

    from sfsc.engine import SFSCTrainer

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    optimizer, _ = SFSCTrainer.build_optimizer(sfsc_cfg, model)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in model.parameters()}
