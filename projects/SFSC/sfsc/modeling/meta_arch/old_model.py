"""The frozen reference model of one-to-one compatible training (BCT / Asymmetric)."""
from __future__ import annotations

import logging
import os

import torch

from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model

from ...config import add_sfsc_config
from ...config_checks import ConfigError
from ...fastreid.checkpoint import CheckpointError, SFSCCheckpointer

logger = logging.getLogger(__name__)

__all__ = ["old_model_config", "load_old_model"]


def old_model_config(cfg):
    """Config of the old model: SFSC.OLD_MODEL.CONFIG, else ``cfg`` as a plain full-width model."""
    if cfg.SFSC.OLD_MODEL.CONFIG:
        old = get_cfg()
        add_sfsc_config(old)
        old.merge_from_file(cfg.SFSC.OLD_MODEL.CONFIG)
    else:
        old = cfg.clone()
        old.defrost()
        old.SFSC.WIDTHS = []
        old.SFSC.TRAIN_WIDTH = 1.0
    old.MODEL.BACKBONE.PRETRAIN = False  # its checkpoint replaces every weight (no download)
    old.SFSC.COMPAT_LOSS = "none"
    old.SFSC.OLD_MODEL.WEIGHTS = ""
    old.MODEL.HEADS.NUM_CLASSES = cfg.MODEL.HEADS.NUM_CLASSES
    old.MODEL.DEVICE = cfg.MODEL.DEVICE
    old.freeze()
    return old


def _check_old_model(cfg, old_cfg, model) -> None:
    # The old model runs on the new model's normalised images and its classifier / features
    # are compared with the new features: both must agree, or the loss is meaningless.
    for key in ("PIXEL_MEAN", "PIXEL_STD"):
        new, old = [float(v) for v in cfg.MODEL[key]], [float(v) for v in old_cfg.MODEL[key]]
        if new != old:
            raise ConfigError(f"MODEL.{key} is {new} here but {old} in the old model's config "
                              f"{cfg.SFSC.OLD_MODEL.CONFIG}: both models must see the same "
                              "normalised images.")
    dim = cfg.MODEL.HEADS.EMBEDDING_DIM or cfg.MODEL.BACKBONE.FEAT_DIM
    old_dim = model.heads.weight.shape[1]
    if old_dim != dim:
        raise ConfigError(f"The old model ({cfg.SFSC.OLD_MODEL.WEIGHTS}) has {old_dim}-d "
                          f"features, this model {dim}-d (MODEL.HEADS.EMBEDDING_DIM, else "
                          f"MODEL.BACKBONE.FEAT_DIM): compatible features need one dimension. "
                          f"Set MODEL.HEADS.EMBEDDING_DIM {old_dim}.")


def load_old_model(cfg) -> torch.nn.Module:
    """Build the old model, load SFSC.OLD_MODEL.WEIGHTS strictly, freeze it (eval mode)."""
    path = cfg.SFSC.OLD_MODEL.WEIGHTS
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"SFSC.OLD_MODEL.WEIGHTS {path!r} does not exist. One-to-one compatible training "
            "needs the old (full) model first: train it with the dataset's unified_R18.yml "
            "(SFSC.TRAIN_WIDTH 1.0) and point SFSC.OLD_MODEL.WEIGHTS at its model_final.pth.")
    old_cfg = old_model_config(cfg)
    model = build_model(old_cfg)
    try:
        SFSCCheckpointer(model, allow_pickle=cfg.SFSC.CHECKPOINT.ALLOW_PICKLE).load(path)
    except CheckpointError as e:
        if cfg.SFSC.OLD_MODEL.CONFIG:
            raise
        raise CheckpointError(f"{e}\nSFSC.OLD_MODEL.CONFIG is empty, so the old model was built "
                              "as this config's full-width switchable model. For a model of "
                              "another architecture (e.g. a dense FastReID Baseline), set "
                              "SFSC.OLD_MODEL.CONFIG to the config.yaml it was trained with."
                              ) from None
    _check_old_model(cfg, old_cfg, model)
    model.eval()
    model.requires_grad_(False)
    logger.info(f"Loaded the frozen old model from {cfg.SFSC.OLD_MODEL.WEIGHTS}")
    return model
