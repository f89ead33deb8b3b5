"""Test set-up: a private dataset folder and few threads (``sfsc`` is imported as installed)."""
import os
import shutil
import tempfile

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# FastReID reads the dataset root once, at import: set it before anything imports fastreid.
os.environ.setdefault("FASTREID_DATASETS",
                      os.path.join(tempfile.gettempdir(), "sfsc-test-datasets"))
# No test downloads weights or reads the user's: torch hub's cache is an empty folder of the
# session's own, and the pretrained-weights resolver never tries the network.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="sfsc-test-torch-home-")
os.environ["SFSC_OFFLINE"] = "1"

from benchmark_runs import fake_training  # noqa: E402,F401  (a fixture of the benchmark tests)

import sfsc  # noqa: E402,F401  (after the line above; patches FastReID before any test does)

# One thread: on a shared machine, OpenMP threads waiting for each other cost more than they gain
# (the tests' CPU time triples with two under load).
torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def _discard_tmp_dirs_of_passed_module(request, tmp_path_factory):
    """Delete the temporary folders a module made once all its tests passed.

    Trained checkpoints hold Adam's state (~130 MB each for ResNet-18): kept to the end of the
    session they add up to ~6 GB. A failed module keeps its folders for inspection. (A passed
    test's own ``tmp_path`` goes at once: ``tmp_path_retention_policy`` in pyproject.toml.)
    """
    failed = request.session.testsfailed
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    if request.session.testsfailed == failed:
        for path in set(base.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, saying why, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (tools/gpu_check.sh runs these on a GPU)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def sfsc_cfg():
    """A fresh, mutable SFSC config built on configs/Base-SFSC.yml, shrunk for CPU tests."""
    from fastreid.config import get_cfg

    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-SFSC.yml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HEADS.NUM_CLASSES = 8
    cfg.MODEL.HEADS.EMBEDDING_DIM = 32
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.SIZE_TEST = [32, 16]
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.AMP.ENABLED = False
    return cfg
