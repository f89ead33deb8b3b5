"""Config set-up for SFSC entry points: FastReID's default_setup plus seed and device."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from fastreid.config import get_cfg
from fastreid.engine.defaults import default_setup
from fastreid.utils import comm
from fastreid.utils.logger import setup_logger

from ..config import add_sfsc_config
from ..config_checks import ConfigError, check_config, merge_config
from ..modeling.backbones.pretrained import check_pretrained

__all__ = ["setup_cfg", "USER_ERRORS", "exit_on_user_error"]

logger = logging.getLogger(__name__)


def setup_cfg(args, setup: bool = True):
    """Build the frozen config from ``--config-file`` and trailing KEY VALUE options.

    With ``setup``: create OUTPUT_DIR, log and save config.yaml (FastReID's default_setup),
    fall back to the CPU when CUDA is absent, seed every RNG and record the seed. Training
    checks (and when online fetches) the pretrained backbone weights here, before anything is
    built; ``--eval-only`` skips them, since MODEL.WEIGHTS replaces them.
    """
    cfg = get_cfg()
    add_sfsc_config(cfg)
    merge_config(cfg, args.config_file, args.opts or [])
    check_config(cfg)
    if getattr(args, "eval_only", False):
        cfg.MODEL.BACKBONE.PRETRAIN = False
    check_pretrained(cfg)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SEED < 0:
        cfg.SEED = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        cfg.SEED = comm.all_gather(cfg.SEED)[0] if comm.get_world_size() > 1 else cfg.SEED
    cfg.freeze()
    if setup:
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
    return cfg


def _user_errors() -> tuple:
    from ..data.errors import DatasetError
    from ..engine.checkpoint import CheckpointError
    from ..engine.task_step import NonFiniteTrainingError
    from ..modeling.fastreid_checkpoint import DenseCheckpointError

    return (ConfigError, CheckpointError, NonFiniteTrainingError, DatasetError, FileNotFoundError,
            DenseCheckpointError)


USER_ERRORS = _user_errors()


def exit_on_user_error(func, *args, **kwargs):
    """Run ``func``; a user error (bad config, checkpoint, data) exits 2 with its message only.

    Programming errors keep their traceback. Earlier outputs are left as they are.
    """
    import sys

    try:
        return func(*args, **kwargs)
    except USER_ERRORS as e:
        print(f"\nerror: {e}", file=sys.stderr)
        sys.exit(2)
