"""Load a switchable model for deployment: from a training output folder, a config + weights,
or a config alone (random weights, enough to measure cost)."""
from __future__ import annotations

import math
import os
from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model

from ..config import add_sfsc_config
from ..config_checks import merge_config
from ..fastreid.checkpoint import SFSCCheckpointer
from ..modeling.backbones.pretrained import sha256_of
from ..modeling.switchable import switchable_widths
from .errors import DeployError

__all__ = ["LoadedModel", "load_switchable", "check_width", "checkpoint_id"]


class LoadedModel(NamedTuple):
    cfg: object  # frozen FastReID config
    model: nn.Module  # switchable model, eval mode, CPU
    config_file: str
    weights: Optional[str]  # None: random weights


def checkpoint_id(path: Optional[str]) -> Optional[str]:
    """The first 16 hex digits of a checkpoint file's SHA-256 (None: no file): what names the
    network in feature files and indexes, wherever the file lies."""
    return sha256_of(path)[:16] if path and os.path.isfile(path) else None


def _peek_num_classes(weights: str) -> Optional[int]:
    try:  # mmap: only the classifier's shape is read, not the whole file
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # the checkpointer's own load explains what is wrong with the file
    state = state.get("model", state) if isinstance(state, dict) else {}
    weight = state.get("heads.weight") if isinstance(state, dict) else None
    return int(weight.shape[0]) if weight is not None else None


def load_switchable(model_dir: str = "", config_file: str = "", weights: str = "",
                    opts: Sequence[str] = (), checkpoint: str = "model_final.pth"
                    ) -> LoadedModel:
    """The frozen cfg and the switchable model (eval mode, CPU), with where they came from.

    ``model_dir``: a training OUTPUT_DIR with config.yaml and ``checkpoint``. Otherwise
    ``config_file`` (+ KEY VALUE ``opts``) and ``weights``; without weights the model keeps its
    random initialisation. The training-only parts (old model, compatible loss) are switched off:
    they hold no weights of the deployed network.
    """
    if model_dir:
        if not os.path.isdir(model_dir):
            raise DeployError(f"--model-dir {model_dir} is not a folder. Pass a training "
                              "OUTPUT_DIR (it holds config.yaml and model_final.pth), or "
                              "--config-file with --weights.")
        config_file = os.path.join(model_dir, "config.yaml")
        weights = os.path.join(model_dir, checkpoint)
        for path in (config_file, weights):
            if not os.path.isfile(path):
                raise DeployError(f"{model_dir} has no {os.path.basename(path)}: it is not a "
                                  "finished training output folder (train to the end, or pass "
                                  "--config-file and --weights of an intermediate checkpoint).")
    if not config_file:
        raise DeployError("no model given: pass --model-dir OUTPUT_DIR, or --config-file "
                          "(with --weights for a trained model).")
    if weights and not os.path.isfile(weights):
        raise DeployError(f"--weights {weights} is not a file. Pass the model_final.pth (or "
                          "another checkpoint) written by tools/train_net.py.")
    cfg = get_cfg()
    add_sfsc_config(cfg)
    merge_config(cfg, config_file, list(opts))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False  # replaced by the checkpoint, or not wanted
    cfg.SFSC.OLD_MODEL.WEIGHTS = ""
    cfg.SFSC.COMPAT_LOSS = "none"  # same layers and widths; the loss is needed only to train
    classes = _peek_num_classes(weights) if weights else None
    if classes is not None:  # the classifier is not deployed, but strict loading needs it
        cfg.MODEL.HEADS.NUM_CLASSES = classes
    cfg.MODEL.HEADS.NUM_CLASSES = max(1, int(cfg.MODEL.HEADS.NUM_CLASSES))
    cfg.freeze()
    model = build_model(cfg)
    if weights:
        SFSCCheckpointer(model, allow_pickle=cfg.SFSC.CHECKPOINT.ALLOW_PICKLE).load(weights)
    model.eval()
    return LoadedModel(cfg, model, os.path.abspath(config_file),
                       os.path.abspath(weights) if weights else None)


def check_width(model: nn.Module, width: float) -> float:
    """``width`` as the model spells it; DeployError if the model holds no such sub-model."""
    widths = switchable_widths(model)
    for w in widths:
        if math.isclose(w, float(width), abs_tol=1e-6):
            return w
    raise DeployError(f"width {width} is not one of the widths this model holds "
                      f"({', '.join(f'{w:g}' for w in widths)}). A switchable checkpoint "
                      "contains exactly the sub-models it was trained with (SFSC.WIDTHS and "
                      "SFSC.TRAIN_WIDTH in its config.yaml); pick one of those.")
