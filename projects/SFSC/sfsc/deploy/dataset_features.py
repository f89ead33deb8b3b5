"""One model's features of a dataset's query and gallery, as the files the compatibility tools
read: what each platform extracts so that a server can score them against each other.

Every platform runs its own model (a switchable checkpoint at one width, or an exported
sub-model) on the same test set and writes, into one folder, ``<name>_query.npz`` and
``<name>_gallery.npz`` (``feats``, ``pids``, ``camids``, ``paths``, ``metric``; see
:mod:`sfsc.evaluation.feature_files`) and ``<name>.json`` (the model, its preprocessing, the
dataset). ``tools/eval_compat.py`` scores such a folder as one matrix, ``tools/build_index.py``
indexes a gallery file and ``tools/search_index.py`` / ``tools/visualize_ranks.py`` query it.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from fastreid.config import get_cfg

from ..config import add_sfsc_config
from ..config_checks import merge_config
from ..data.loaders import load_dataset
from ..evaluation.feature_files import split_file, write_split
from ..fastreid.checkpoint import atomic_write_bytes
from .extraction import Encoder, extract_files

logger = logging.getLogger(__name__)

__all__ = ["SPLITS", "SplitFeatures", "dataset_config", "extract_dataset",
           "save_dataset_features"]

SPLITS = ("query", "gallery")


class SplitFeatures(NamedTuple):
    """Features of one split of a test set, row for row with its images."""

    feats: np.ndarray  # (N, D) float32, unit length
    pids: np.ndarray  # (N,) int64
    camids: np.ndarray  # (N,) int64, as the dataset class numbers them
    paths: List[str]  # N image files


def dataset_config(opts: Sequence[str] = ()):
    """FastReID's defaults with SFSC's keys and ``opts`` (KEY VALUE, e.g.
    ``SFSC.DATA.CUSTOM_PATH``): how a dataset is read when no model config says it (frozen)."""
    cfg = get_cfg()
    add_sfsc_config(cfg)
    merge_config(cfg, "", list(opts))
    cfg.freeze()
    return cfg


def extract_dataset(dataset: str, cfg, encoder: Encoder, batch_size: int = 64,
                    workers: int = 2) -> Dict[str, SplitFeatures]:
    """``{"query": ..., "gallery": ...}``: ``encoder``'s features of registered dataset
    ``dataset``'s test images, read (and screened for unreadable files) as the evaluation reads
    them under ``cfg``; the rows keep the dataset's order."""
    data = load_dataset(dataset, cfg, "test")
    out = {}
    for split in SPLITS:
        items = getattr(data, split)
        logger.info(f"{dataset} {split}: {len(items)} images")
        # strict: the lists are screened already, and a row left out would misalign this
        # model's files with every other platform's
        result = extract_files([(item[0], item[0]) for item in items], encoder, batch_size,
                               strict=True, workers=workers)
        out[split] = SplitFeatures(result.features,
                                   np.asarray([int(item[1]) for item in items], np.int64),
                                   np.asarray([int(item[2]) for item in items], np.int64),
                                   [item[0] for item in items])
    return out


def save_dataset_features(folder: str, name: str, dataset: str,
                          features: Dict[str, SplitFeatures], encoder: Encoder) -> List[str]:
    """Write ``<name>_query.npz``, ``<name>_gallery.npz`` and ``<name>.json`` into ``folder``;
    their paths."""
    if not name or os.sep in name:
        raise ValueError(f"model name {name!r} must be a file-name stem (no folder)")
    written = [write_split(split_file(folder, name, split), *features[split])
               for split in SPLITS]
    info = {"name": name, "dataset": dataset, "metric": "cosine", "l2_normalized": True,
            "rows": {split: len(features[split].pids) for split in SPLITS},
            "model": encoder.model, "preprocessing": encoder.preprocessing}
    path = os.path.join(folder, f"{name}.json")
    text = json.dumps(info, indent=2) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
    return written + [path]
