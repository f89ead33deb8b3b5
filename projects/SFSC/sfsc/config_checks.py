"""Config loading that explains its errors, and the checks of config keys that need no other
part of SFSC (width lists, FastReID keys a switchable model cannot honour).

yacs reports a misspelt key as ``KeyError('Non-existent config key: SFSC.WIDHTS')`` (or an
AssertionError from the command line) and a bad width list only much later, deep inside model
construction. Here each problem becomes one :class:`ConfigError` whose message names the key,
the closest valid key or the valid values, and the fix. The whole check, which also asks the
loss and aggregation registries, is ``sfsc.engine.defaults.check_config``.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from typing import Iterable, List, Sequence

import yaml

from fastreid.layers import any_softmax, pooling

__all__ = ["ConfigError", "merge_config", "check_widths", "check_fastreid_keys", "all_keys"]


class ConfigError(ValueError):
    """A config that cannot be used as written; the message says which key and what to do."""


def all_keys(node, prefix: str = "") -> List[str]:
    """Every full key (``A.B.C``) of a yacs CfgNode."""
    keys = []
    for key, value in node.items():
        full = f"{prefix}{key}"
        keys.append(full)
        if isinstance(value, dict):
            keys.extend(all_keys(value, full + "."))
    return keys


def _unknown_key(cfg, key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(cfg), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return ConfigError(f"Unknown config key {key} in {where}.{hint} Keys are UPPER_CASE and "
                       "nested as in configs/Base-SFSC.yml; `python tools/train_net.py "
                       "--config-file X.yml` writes the full config to OUTPUT_DIR/config.yaml.")


def merge_config(cfg, config_file: str = "", opts: Sequence[str] = ()) -> None:
    """``cfg.merge_from_file`` + ``merge_from_list`` with errors a user can act on."""
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"Config file {config_file} does not exist (relative paths are "
                              f"taken from {os.getcwd()}).")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            key = re.sub(r"^Non-existent config key: ", "", str(e.args[0]))
            raise _unknown_key(cfg, key, config_file) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_file} is not valid YAML: {e}") from None
        except ValueError as e:
            raise ConfigError(f"{config_file}: {e}") from None
    if len(opts) % 2:
        raise ConfigError(f"Command-line overrides come in KEY VALUE pairs; got {len(opts)} "
                          f"words: {' '.join(opts)}")
    try:
        cfg.merge_from_list(list(opts))
    except AssertionError as e:
        key = re.sub(r"^Non-existent key: ", "", str(e))
        raise _unknown_key(cfg, key, "the command line") from None
    except ValueError as e:
        raise ConfigError(f"command line: {e}. Lists are written as [0.25,0.5] "
                          "(no spaces) and tuples as (\"A\",).") from None


def check_widths(widths: Iterable[float], key: str, allow_full: bool) -> List[float]:
    """``widths`` as a list; ConfigError unless each is a crop ratio in (0, 1) (in (0, 1] with
    ``allow_full``) and none repeats. ``key`` names them in the message."""
    values = list(widths)
    for w in values:
        ok = isinstance(w, (int, float)) and math.isfinite(w) and 0 < w and (
            w <= 1 if allow_full else w < 1)
        if not ok:
            bound = "(0, 1]" if allow_full else "(0, 1) (the full width 1.0 is always included)"
            raise ConfigError(f"{key} = {values}: {w!r} is not a crop ratio in {bound}.")
    if len(set(values)) != len(values):
        raise ConfigError(f"{key} = {values} lists a width twice.")
    return values


# FastReID keys whose features the switchable components do not have. FastReID's own ResNet
# reads these flags; the switchable backbones would build a plain network and drop them.
_BACKBONE_FLAGS = {
    "WITH_IBN": "IBN-a blocks (InstanceNorm on half of the first BN's channels) are not built: "
                "every width has one plain BatchNorm per layer, and an IN / BN split of sliced "
                "channels would change meaning from width to width",
    "WITH_SE": "squeeze-and-excitation blocks are not part of the switchable backbones (their "
               "two linear layers would need slicing per width)",
    "WITH_NL": "non-local blocks are not part of the switchable backbones",
}
# Losses FastReID's Baseline.losses computes; any other name in MODEL.LOSSES.NAME is skipped
# by it without a word.
FASTREID_LOSSES = ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")
# Test-time options of FastReID's ReidEvaluator that the many-to-many evaluator does not apply.
_TEST_OPTIONS = {
    "TEST.RERANK.ENABLED": "k-reciprocal re-ranking",
    "TEST.AQE.ENABLED": "average query expansion",
    "TEST.ROC.ENABLED": "the ROC curve",
    "TEST.PRECISE_BN.ENABLED": "precise BN (it would update one width's BatchNorms only)",
}
SWITCHABLE_META_ARCH = "SwitchableBaseline"
SWITCHABLE_HEAD = "SwitchableEmbeddingHead"


def _is_switchable_backbone(name: str) -> bool:
    return name.startswith("build_switchable_")


# The switchable model's top-level modules: what FastReID's LayerFreeze hook can put in eval mode.
_FREEZABLE = ("backbone", "heads")


def _check_freeze_layers(cfg) -> None:
    # FastReID freezes by two rules that must agree: the optimizer drops the gradients of every
    # parameter whose name starts with an entry (a regex), the LayerFreeze hook puts only the
    # top-level modules of that exact name in eval mode. Any other name freezes the weights but
    # not the BatchNorm statistics; with FREEZE_ITERS 0 neither rule runs.
    layers = list(cfg.MODEL.FREEZE_LAYERS)
    for name in layers:
        if name not in _FREEZABLE:
            raise ConfigError(f"MODEL.FREEZE_LAYERS {layers}: {name!r} is not a top-level module "
                              f"of the switchable model, so FastReID would hold its weights but "
                              f"not its BatchNorm statistics. Use one of {list(_FREEZABLE)}.")
    if layers and cfg.SOLVER.FREEZE_ITERS <= 0:
        raise ConfigError(f"MODEL.FREEZE_LAYERS {layers} freezes nothing while "
                          f"SOLVER.FREEZE_ITERS is {cfg.SOLVER.FREEZE_ITERS}: set FREEZE_ITERS to "
                          "the number of iterations to hold them, or MODEL.FREEZE_LAYERS [].")


def check_fastreid_keys(cfg) -> None:
    """Refuse FastReID keys a switchable model would silently ignore; raise ConfigError.

    Runs when any of META_ARCHITECTURE, BACKBONE.NAME, HEADS.NAME names an SFSC component.
    """
    m = cfg.MODEL
    names = {"MODEL.META_ARCHITECTURE": (m.META_ARCHITECTURE,
                                         m.META_ARCHITECTURE == SWITCHABLE_META_ARCH),
             "MODEL.BACKBONE.NAME": (m.BACKBONE.NAME, _is_switchable_backbone(m.BACKBONE.NAME)),
             "MODEL.HEADS.NAME": (m.HEADS.NAME, m.HEADS.NAME == SWITCHABLE_HEAD)}
    if not any(ok for _, ok in names.values()):
        return
    for key, (value, ok) in names.items():
        if not ok:
            raise ConfigError(
                f"{key} is {value!r} while the others name SFSC's switchable components. A "
                f"switchable model needs all three: MODEL.META_ARCHITECTURE "
                f"{SWITCHABLE_META_ARCH}, MODEL.BACKBONE.NAME build_switchable_<arch>_backbone "
                f"(resnet, mobilenetv2, shufflenet, shufflenetv2) and MODEL.HEADS.NAME "
                f"{SWITCHABLE_HEAD}; FastReID's own parts have one width only.")
    for flag, why in _BACKBONE_FLAGS.items():
        if m.BACKBONE.get(flag, False):
            raise ConfigError(f"MODEL.BACKBONE.{flag} is True, but {m.BACKBONE.NAME} does not "
                              f"support it: {why}. Set MODEL.BACKBONE.{flag} False (a dense "
                              "FastReID model with it can still be the frozen old model of "
                              "one-to-one BCT / Asymmetric, SFSC.OLD_MODEL.WEIGHTS).")
    for key, norm in (("MODEL.BACKBONE.NORM", m.BACKBONE.NORM), ("MODEL.HEADS.NORM",
                                                                m.HEADS.NORM)):
        if norm not in ("BN", "syncBN"):
            raise ConfigError(f"{key} is {norm!r}: switchable layers keep one BatchNorm per "
                              "width, so only 'BN' and 'syncBN' are supported (FastReID's "
                              "GhostBN, FrozenBN and GN are not).")
    pool = m.HEADS.POOL_LAYER
    if pool in ("Identity", "Flatten") or not hasattr(pooling, pool):
        usable = [p for p in pooling.__all__ if p not in ("Identity", "Flatten")]
        raise ConfigError(f"MODEL.HEADS.POOL_LAYER {pool!r} cannot be used: the head needs one "
                          f"pooled vector per image of the width's channel count ('Identity' "
                          f"keeps the feature map, 'Flatten' folds it into the channels). Use "
                          f"one of {usable}.")
    if not hasattr(any_softmax, m.HEADS.CLS_LAYER):
        raise ConfigError(f"MODEL.HEADS.CLS_LAYER {m.HEADS.CLS_LAYER!r} is not one of "
                          f"{any_softmax.__all__}.")
    if m.HEADS.NECK_FEAT not in ("before", "after"):
        raise ConfigError(f"MODEL.HEADS.NECK_FEAT {m.HEADS.NECK_FEAT!r} is not 'before' or "
                          "'after'.")
    losses = tuple(m.LOSSES.NAME)
    unknown = [n for n in losses if n not in FASTREID_LOSSES]
    if unknown or not losses:
        what = f"names {unknown}, which FastReID's Baseline skips without computing" \
            if unknown else "is empty: the full model would have no original loss"
        raise ConfigError(f"MODEL.LOSSES.NAME {losses} {what}. Use names from "
                          f"{FASTREID_LOSSES}.")
    _check_freeze_layers(cfg)
    if cfg.TEST.METRIC not in ("cosine", "euclidean"):
        raise ConfigError(f"TEST.METRIC {cfg.TEST.METRIC!r}: the many-to-many evaluator ranks "
                          "by 'cosine' or 'euclidean'.")
    for key, what in _TEST_OPTIONS.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        if node:
            raise ConfigError(f"{key} is True, but SFSC's many-to-many evaluator does not apply "
                              f"{what}; set it False.")
