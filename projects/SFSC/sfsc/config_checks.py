"""Config loading that explains its errors, and checks of SFSC's keys before anything is built.

yacs reports a misspelt key as ``KeyError('Non-existent config key: SFSC.WIDHTS')`` (or an
AssertionError from the command line) and a bad width list only much later, deep inside model
construction. Here each problem becomes one :class:`ConfigError` whose message names the key,
the closest valid key or the valid values, and the fix.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from typing import Iterable, List, Sequence

import yaml

__all__ = ["ConfigError", "merge_config", "check_config", "all_keys"]


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


def _check_widths(widths: Iterable[float], key: str, allow_full: bool) -> List[float]:
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


def check_config(cfg) -> None:
    """Check SFSC's keys (widths, losses, aggregation, one-to-one set-up); raise ConfigError."""
    from .engine.aggregation import AGGREGATIONS
    from .modeling.losses import build_compat_loss

    s = cfg.SFSC
    widths = _check_widths(s.WIDTHS, "SFSC.WIDTHS", allow_full=False)
    _check_widths([s.TRAIN_WIDTH], "SFSC.TRAIN_WIDTH", allow_full=True)
    try:  # the loss checks its own name and keys (SFSC.EVIDENTIAL.*, SFSC.ASYMMETRIC.*)
        build_compat_loss(cfg)
    except ValueError as e:
        raise ConfigError(f"{e}.") from None
    if s.AGGREGATION not in AGGREGATIONS:
        raise ConfigError(f"SFSC.AGGREGATION {s.AGGREGATION!r} is not one of "
                          f"{sorted(AGGREGATIONS)}.")
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
