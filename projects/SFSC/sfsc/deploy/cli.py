"""Command-line pieces shared by the deployment tools: model arguments and user-error exits."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from ..config_checks import ConfigError
from ..fastreid.checkpoint import CheckpointError
from .errors import DeployError
from .loading import LoadedModel, load_switchable

__all__ = ["add_model_arguments", "load_from_args", "run_tool"]


def add_model_arguments(parser: argparse.ArgumentParser, need_weights: bool = True) -> None:
    """--model-dir | --config-file [--weights], --checkpoint, KEY VALUE overrides (positional;
    parse with ``parse_intermixed_args`` so that they may follow the options)."""
    group = parser.add_argument_group("switchable model")
    group.add_argument("--model-dir", default="",
                       help="training OUTPUT_DIR holding config.yaml and the checkpoint")
    group.add_argument("--checkpoint", default="model_final.pth",
                       help="checkpoint file name inside --model-dir (default: %(default)s)")
    group.add_argument("--config-file", default="", help="a config instead of --model-dir")
    group.add_argument("--weights", default="",
                       help="checkpoint for --config-file" + ("" if need_weights else
                                                              " (default: random weights)"))
    group.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE",
                       help="KEY VALUE config overrides (with --config-file)")


def load_from_args(args: argparse.Namespace, need_weights: bool = True) -> LoadedModel:
    """Load the model the arguments of :func:`add_model_arguments` name."""
    if args.model_dir and args.config_file:
        raise DeployError("pass either --model-dir or --config-file, not both.")
    if args.config_file and need_weights and not args.weights:
        raise DeployError("--config-file needs --weights (the trained checkpoint); or pass "
                          "--model-dir OUTPUT_DIR.")
    if args.model_dir and args.opts:
        raise DeployError(f"config overrides {' '.join(args.opts)} go with --config-file; "
                          "--model-dir uses the folder's config.yaml as it is.")
    return load_switchable(args.model_dir, args.config_file, args.weights, args.opts,
                           args.checkpoint)


def run_tool(main: Callable[[Sequence[str]], int], argv=None) -> int:
    """Run ``main``; a user error prints one paragraph and returns 2, other errors propagate."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        return main(argv)
    except (DeployError, ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
