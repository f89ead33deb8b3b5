"""Where the features of a rank grid come from: a trained model's test set, or saved files.

A saved file is a saved-features ``.npz`` (arrays ``feats`` (N, D), ``pids`` (N,), ``camids``
(N,); :mod:`sfsc.evaluation.feature_files`) that also holds ``paths`` (N,), the image file of
every row, as ``tools/extract_features.py --dataset`` writes it.
"""
from __future__ import annotations

import os
import zipfile
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..data.loaders import build_test_loader
from .feature_extraction import extract_features
from .model_set import load_trained_model
from .rank_grid import FeatureSet

__all__ = ["load_feature_file", "model_feature_sets"]


def load_feature_file(path: str) -> FeatureSet:
    """A :class:`FeatureSet` from an ``.npz`` with ``feats``, ``pids``, ``camids``, ``paths``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [a for a in ("feats", "pids", "camids", "paths") if a not in data.files]
            if missing:
                raise ValueError(
                    f"{path} lacks the array(s) {', '.join(missing)}. A rank grid needs feats "
                    "(N, D), pids (N,), camids (N,) and paths (N,), the image file of every "
                    "row (np.savez(..., paths=np.array(list_of_paths))).")
            feats, pids, camids = data["feats"], data["pids"], data["camids"]
            paths = [str(p) for p in data["paths"]]
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"cannot read {path} as a numpy .npz archive ({exc})") from None
    if feats.ndim != 2 or not (len(feats) == len(pids) == len(camids) == len(paths)):
        raise ValueError(f"{path}: feats {feats.shape}, pids {pids.shape}, camids "
                         f"{camids.shape} and {len(paths)} paths do not describe the same rows")
    base = os.path.dirname(os.path.abspath(path))
    paths = [p if os.path.isabs(p) else os.path.join(base, p) for p in paths]
    return FeatureSet(feats.astype(np.float32), pids.astype(np.int64), camids.astype(np.int64),
                      paths)


def model_feature_sets(output_dir: str, widths: Sequence[float], dataset: Optional[str] = None,
                       checkpoint: str = "model_final.pth"
                       ) -> Tuple[Dict[float, FeatureSet], Dict[float, FeatureSet], str]:
    """Query and gallery features of a trained model at ``widths`` on one of its test sets.

    Returns ``({width: query set}, {width: gallery set}, metric)``; ``dataset`` defaults to the
    config's first DATASETS.TESTS, ``metric`` is its TEST.METRIC.
    """
    cfg, model = load_trained_model(output_dir, checkpoint)
    missing = [w for w in widths if not any(abs(w - m) < 1e-6 for m in model.widths)]
    if missing:
        raise ValueError(f"{output_dir} holds widths {list(model.widths)}, not {missing}")
    name = dataset or cfg.DATASETS.TESTS[0]
    loader, num_query = build_test_loader(cfg, name)
    feats, pids, camids = extract_features(model, loader, list(widths),
                                           flip=cfg.TEST.FLIP.ENABLED)
    paths = [item[0] for item in loader.dataset.img_items]
    pids, camids = pids.numpy(), camids.numpy()

    def split(w: float, part: slice) -> FeatureSet:
        return FeatureSet(feats[w][part].numpy(), pids[part], camids[part], paths[part])

    queries = {w: split(w, slice(0, num_query)) for w in widths}
    galleries = {w: split(w, slice(num_query, None)) for w in widths}
    return queries, galleries, cfg.TEST.METRIC
