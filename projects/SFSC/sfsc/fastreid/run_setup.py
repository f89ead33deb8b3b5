"""Run set-up around FastReID's ``default_setup``: the device, the seed and determinism."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

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


def setup_run(cfg, args) -> None:
    """Create OUTPUT_DIR, log and save config.yaml (FastReID's default_setup), seed every RNG
    (SEED + rank), switch on determinism (SFSC.DETERMINISTIC) and write OUTPUT_DIR/seed.txt."""
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
    logger.info(f"Seed {cfg.SEED} (process {comm.get_rank()} uses {seed}); "
                f"device {cfg.MODEL.DEVICE}")
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        with open(os.path.join(cfg.OUTPUT_DIR, "seed.txt"), "w") as f:
            f.write(f"{cfg.SEED}\n")
