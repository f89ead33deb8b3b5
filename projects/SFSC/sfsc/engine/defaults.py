"""Set-up of the training entry points: the config built and checked before anything is built,
and the errors a user has to fix turned into one message and exit status 2.

The whole config check lives here, in the layer that trains, because it asks both the
compatible-loss registry (``modeling.losses``) and the aggregation registry (``engine``).
"""
from __future__ import annotations

import sys

from fastreid.config import get_cfg

from ..config import add_sfsc_config
from ..config_checks import ConfigError, check_fastreid_keys, check_widths, merge_config
from ..data.errors import DatasetError
from ..fastreid.checkpoint import CheckpointError
from ..fastreid.run_setup import resolve_device_and_seed, setup_run
from ..modeling.backbones.pretrained import check_pretrained
from ..modeling.fastreid_checkpoint import DenseCheckpointError
from ..modeling.losses import build_compat_loss
from .aggregation import build_aggregation
from .task_step import NonFiniteTrainingError

__all__ = ["setup_cfg", "check_config", "USER_ERRORS", "exit_on_user_error"]


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
    resolve_device_and_seed(cfg)
    cfg.freeze()
    if setup:
        setup_run(cfg, args)
    return cfg


def check_config(cfg) -> None:
    """Check SFSC's keys (widths, losses, aggregation, one-to-one set-up) and the FastReID keys
    a switchable model cannot honour; raise ConfigError."""
    s = cfg.SFSC
    widths = check_widths(s.WIDTHS, "SFSC.WIDTHS", allow_full=False)
    check_widths([s.TRAIN_WIDTH], "SFSC.TRAIN_WIDTH", allow_full=True)
    try:  # each registry checks its own names and keys (SFSC.EVIDENTIAL.*, SFSC.ASYMMETRIC.*)
        build_compat_loss(cfg)
        build_aggregation(cfg)
    except ValueError as e:
        raise ConfigError(f"{e}.") from None
    if s.COMPAT_LOSS != "none" and not widths:
        raise ConfigError(f"SFSC.WIDTHS is empty but SFSC.COMPAT_LOSS is {s.COMPAT_LOSS!r}: "
                          "there is no sub-model to make compatible. List the sub-model widths "
                          "(e.g. [0.25,0.5,0.75]) or, for a plain single-width model, set "
                          "SFSC.COMPAT_LOSS none.")
    one_to_one = bool(s.OLD_MODEL.WEIGHTS)
    if s.COMPAT_LOSS != "none" and not one_to_one and s.TRAIN_WIDTH != 1.0:
        raise ConfigError(f"SFSC.TRAIN_WIDTH is {s.TRAIN_WIDTH} with a compatible loss but no "
                          "SFSC.OLD_MODEL.WEIGHTS: sub-models are made compatible with the full "
                          "width 1.0 of the same network, or with a frozen old model.")
    if cfg.SOLVER.AMP.DTYPE not in ("float16", "bfloat16"):
        raise ConfigError(f"SOLVER.AMP.DTYPE {cfg.SOLVER.AMP.DTYPE!r} is not 'float16' or "
                          "'bfloat16'.")
    if s.DENSE_INIT.WEIGHTS and cfg.MODEL.WEIGHTS:
        raise ConfigError(f"MODEL.WEIGHTS ({cfg.MODEL.WEIGHTS}) and SFSC.DENSE_INIT.WEIGHTS "
                          f"({s.DENSE_INIT.WEIGHTS}) both set the starting weights: keep "
                          "MODEL.WEIGHTS for a switchable checkpoint, DENSE_INIT for a dense "
                          "FastReID one.")
    check_fastreid_keys(cfg)


USER_ERRORS = (ConfigError, CheckpointError, NonFiniteTrainingError, DatasetError,
               FileNotFoundError, DenseCheckpointError)


def exit_on_user_error(func, *args, **kwargs):
    """Run ``func``; a user error (bad config, checkpoint, data) exits 2 with its message only.

    Programming errors keep their traceback. Earlier outputs are left as they are.
    """
    try:
        return func(*args, **kwargs)
    except USER_ERRORS as e:
        print(f"\nerror: {e}", file=sys.stderr)
        sys.exit(2)
