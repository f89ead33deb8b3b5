"""Score a set of separately trained models as one compatibility matrix.

A switchable model is scored across its own widths during training. Methods that train one
model per width (a unified model per platform, one-to-one BCT / Asymmetric against a frozen
old model) need the same matrix across *models*: M(φ_a, φ_b) with query features from model a
and gallery features from model b. Each entry names a training output folder (its
config.yaml and a checkpoint) and the width to run it at; ``tools/eval_compat.py --model
LABEL=OUTPUT_DIR[@WIDTH] ...`` is the command line.
"""
from __future__ import annotations

import logging
import math
import os
from typing import List, NamedTuple, Optional, Sequence

import torch

from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model

from ..config import add_sfsc_config, model_widths
from ..data.loaders import build_test_loader
from ..fastreid.checkpoint import SFSCCheckpointer
from .compatibility_evaluator import CompatibilityResult, evaluate_compatibility
from .feature_extraction import extract_features
from .feature_files import model_labels

logger = logging.getLogger(__name__)

__all__ = ["ModelEntry", "load_trained_config", "load_trained_model", "evaluate_model_set",
           "evaluate_trained_models", "parse_model_specs"]


class ModelEntry(NamedTuple):
    label: object  # row / column label in the matrix (e.g. the width)
    output_dir: str  # a training OUTPUT_DIR: config.yaml + checkpoint
    width: float  # width to run the model at
    checkpoint: str = "model_final.pth"


def load_trained_config(output_dir: str, checkpoint: str = "model_final.pth"):
    """The frozen config to rebuild a training output folder's model for evaluation.

    Training-only parts (a frozen old model, its loss, the pretrained initialisation) are
    switched off; raises FileNotFoundError unless the folder holds config.yaml and ``checkpoint``.
    """
    config = os.path.join(output_dir, "config.yaml")
    weights = os.path.join(output_dir, checkpoint)
    for path in (config, weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: {output_dir} is not a finished "
                                    "training output folder")
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(config)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    # Training-only: a one-to-one model's frozen reference and the loss that used it.
    cfg.SFSC.OLD_MODEL.WEIGHTS = ""
    cfg.SFSC.COMPAT_LOSS = "none"
    cfg.MODEL.BACKBONE.PRETRAIN = False  # the checkpoint replaces every weight
    cfg.freeze()
    return cfg


def load_trained_model(output_dir: str, checkpoint: str = "model_final.pth"):
    """(cfg, model in eval mode) from a training output folder."""
    cfg = load_trained_config(output_dir, checkpoint)
    model = build_model(cfg)
    SFSCCheckpointer(model).load(os.path.join(output_dir, checkpoint))
    model.eval()
    return cfg, model


def evaluate_model_set(entries: Sequence[ModelEntry], test_loader, num_query: int,
                       metric: str = "cosine", chunk_size: int = 1024,
                       backend: str = "auto") -> CompatibilityResult:
    """Matrix over ``entries`` (rows = query model, columns = gallery model) on one test set.

    ``test_loader`` yields the query images first (``num_query`` of them), then the gallery,
    with the test transforms every entry was trained for.
    """
    queries, galleries = {}, {}
    pids = camids = None
    sizes: List[tuple] = []
    for entry in entries:
        cfg, model = load_trained_model(entry.output_dir, entry.checkpoint)
        sizes.append(tuple(cfg.INPUT.SIZE_TEST))
        if len(set(sizes)) > 1:
            raise ValueError(f"{entry.output_dir} was trained for test size {sizes[-1]}, the "
                             f"other models for {sizes[0]}: they cannot share one test set")
        feats, pids, camids = extract_features(model, test_loader, [entry.width],
                                               flip=cfg.TEST.FLIP.ENABLED)
        queries[entry.label] = feats[entry.width][:num_query]
        galleries[entry.label] = feats[entry.width][num_query:]
        logger.info(f"Features of {entry.output_dir} at width {entry.width} as {entry.label!r}")
    return evaluate_compatibility(queries, galleries,
                                  pids[:num_query].numpy(), camids[:num_query].numpy(),
                                  pids[num_query:].numpy(), camids[num_query:].numpy(),
                                  metric=metric, chunk_size=chunk_size, backend=backend)


def _entry(spec: str, label) -> ModelEntry:
    """The entry ``OUTPUT_DIR[@WIDTH]`` names; the width defaults to SFSC.TRAIN_WIDTH."""
    folder, width = spec, None
    head, sep, tail = spec.rpartition("@")
    if sep:
        try:
            folder, width = head, float(tail)
        except ValueError:
            pass  # an '@' inside the folder's name
    cfg = load_trained_config(folder)
    held = model_widths(cfg)
    if width is None:
        width = float(cfg.SFSC.TRAIN_WIDTH)
    if not any(math.isclose(width, w, abs_tol=1e-6) for w in held):
        raise ValueError(f"{folder} holds the widths {', '.join(f'{w:g}' for w in held)} "
                         f"(its config.yaml), not {width:g}: write {label}={folder}@WIDTH "
                         "with one of those.")
    return ModelEntry(label, folder, width)


def parse_model_specs(specs: Sequence[str]) -> List[ModelEntry]:
    """Entries from ``LABEL=OUTPUT_DIR[@WIDTH]`` strings (matrix labels: the widths when every
    LABEL is a distinct number, else the LABELs); a width left out is the one the folder's
    model was trained at (``SFSC.TRAIN_WIDTH``). Raises ValueError / FileNotFoundError."""
    pairs = []
    for spec in specs:
        label, sep, rest = spec.partition("=")
        if not sep or not label or not rest:
            raise ValueError(f"--model {spec!r}: write LABEL=OUTPUT_DIR or "
                             "LABEL=OUTPUT_DIR@WIDTH (e.g. 0.25=logs/unified_w0.25 or "
                             "phone=logs/sfsc@0.25).")
        pairs.append((label, rest))
    labels = model_labels([label for label, _ in pairs])
    if len(set(labels)) != len(labels):
        raise ValueError(f"--model labels repeat ({', '.join(p[0] for p in pairs)}): each "
                         "model needs its own row and column name.")
    return [_entry(rest, label) for label, (_, rest) in zip(labels, pairs)]


def evaluate_trained_models(entries: Sequence[ModelEntry], dataset: Optional[str] = None,
                            metric: Optional[str] = None, chunk_size: Optional[int] = None,
                            backend: str = "auto") -> CompatibilityResult:
    """Matrix over ``entries`` on the test set ``dataset`` (default: the first entry's first
    DATASETS.TESTS), read with the first entry's config; ``metric`` and ``chunk_size`` default
    to its TEST.METRIC and TEST.COMPAT.CHUNK_SIZE."""
    cfg = load_trained_config(entries[0].output_dir, entries[0].checkpoint)
    loader, num_query = build_test_loader(cfg, dataset or cfg.DATASETS.TESTS[0])
    return evaluate_model_set(entries, loader, num_query, metric=metric or cfg.TEST.METRIC,
                              chunk_size=chunk_size or cfg.TEST.COMPAT.CHUNK_SIZE,
                              backend=backend)
