"""Run set-up around FastReID's ``default_setup``: the device, the seed and determinism."""
from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import random
from typing import Iterator

import numpy as np
import torch

import fastreid
from fastreid.engine.defaults import default_setup
from fastreid.utils import comm
from fastreid.utils.logger import setup_logger

__all__ = ["resolve_device_and_seed", "setup_run"]

logger = logging.getLogger(__name__)


def resolve_device_and_seed(cfg) -> None:
    """Fall back to the CPU when CUDA is absent; draw SEED when it is < 0 (one for all
    processes). ``cfg`` is changed in place and must not be frozen yet."""
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SEED < 0:
        cfg.SEED = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        cfg.SEED = comm.all_gather(cfg.SEED)[0] if comm.get_world_size() > 1 else cfg.SEED


class _DropRecords(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def _fastreid_setup_logs() -> Iterator[None]:
    """While FastReID's default_setup runs: its environment table names the installed release
    (the 1.4.0 wheel's ``fastreid.__version__`` still says "1.3"), and its "Using a generated
    random seed" line is dropped, since setup_run seeds every generator with SEED right after."""
    try:
        release = importlib.metadata.version("fastreid")
    except importlib.metadata.PackageNotFoundError:  # a source checkout: its own string
        release = fastreid.__version__
    stated, fastreid.__version__ = fastreid.__version__, release
    env_logger = logging.getLogger("fastreid.utils.env")
    drop = _DropRecords("Using a generated random seed")
    env_logger.addFilter(drop)
    try:
        yield
    finally:
        env_logger.removeFilter(drop)
        fastreid.__version__ = stated


def setup_run(cfg, args) -> None:
    """Create OUTPUT_DIR, log and save config.yaml (FastReID's default_setup), seed every RNG
    (SEED + rank), switch on determinism (SFSC.DETERMINISTIC) and write OUTPUT_DIR/seed.txt."""
    with _fastreid_setup_logs():
        default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="sfsc")
    seed = cfg.SEED + comm.get_rank()  # data augmentation differs across processes
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.SFSC.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    logger.info(f"Seed {cfg.SEED} in force (SEED; process {comm.get_rank()} seeds torch, numpy "
                f"and random with {seed}); device {cfg.MODEL.DEVICE}")
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        with open(os.path.join(cfg.OUTPUT_DIR, "seed.txt"), "w") as f:
            f.write(f"{cfg.SEED}\n")
