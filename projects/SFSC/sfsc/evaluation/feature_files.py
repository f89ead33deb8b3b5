"""Saved features of several models as files: writing, discovery, validation and their matrix.

A folder holds ``<name>_query.npz`` and ``<name>_gallery.npz`` for every model, each with arrays
``feats`` (N, D) float, ``pids`` (N,) int and ``camids`` (N,) int, and optionally ``paths``
(N,), the image file of each row, and ``metric``, the similarity the features are made for
(``tools/extract_features.py --dataset`` writes all five). Every model describes the same
query images and the same gallery images, in the same order. Models are ordered by the width
their names spell when all names are numbers (``0.25_query.npz``), else by name.
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Dict, List, Tuple

import numpy as np

from ..fastreid.checkpoint import atomic_write_bytes
from .compatibility_evaluator import CompatibilityResult, evaluate_compatibility

__all__ = ["InputError", "Split", "evaluate_folder", "find_models", "load_folder",
           "load_split", "model_labels", "read_split", "split_file", "write_split"]

_SPLITS = ("query", "gallery")
_ARRAYS = ("feats", "pids", "camids")
_FILE = re.compile(r"^(?P<name>.+)_(?P<split>query|gallery)\.npz$")


class InputError(Exception):
    """Files that cannot be evaluated; the message explains why and what is expected."""


Split = Tuple[np.ndarray, np.ndarray, np.ndarray]  # feats (N, D) float32, pids (N,), camids (N,)


def _width(name: str):
    """The width a model name spells (``"0.25"`` -> 0.25), or None."""
    try:
        value = float(name)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def model_labels(names: List[str]) -> list:
    """Matrix labels: the widths when every name spells a distinct one, else the names."""
    widths = [_width(n) for n in names]
    if None in widths or len(set(widths)) != len(widths):
        return list(names)
    return widths


def find_models(folder: str) -> List[str]:
    """Model names with files in ``folder``, ordered by width if all are numbers, else by name."""
    if not os.path.isdir(folder):
        raise InputError(f"{folder} is not a directory. Pass the folder that holds the "
                         f"<name>_query.npz and <name>_gallery.npz files of every model.")
    found: Dict[str, set] = {}
    for entry in os.listdir(folder):
        match = _FILE.match(entry)
        if match:
            found.setdefault(match["name"], set()).add(match["split"])
    if not found:
        raise InputError(f"{folder} holds no <name>_query.npz / <name>_gallery.npz files, so "
                         f"there is no model to evaluate. Save each model's query and gallery "
                         f"features there with arrays feats, pids and camids.")
    for name, splits in sorted(found.items()):
        for missing in sorted(set(_SPLITS) - splits):
            have = sorted(splits)[0]
            raise InputError(f"model '{name}' has {name}_{have}.npz but no {name}_{missing}.npz "
                             f"in {folder}. Every model needs both its query and its gallery "
                             f"features to take part in the matrix.")
    names = list(found)
    if all(_width(n) is not None for n in names):
        return sorted(names, key=lambda n: (_width(n), n))
    return sorted(names)


def split_file(folder: str, name: str, split: str) -> str:
    """Path of model ``name``'s ``split`` ("query" | "gallery") features in ``folder``."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    return os.path.join(folder, f"{name}_{split}.npz")


def write_split(path: str, feats: np.ndarray, pids: np.ndarray, camids: np.ndarray,
                paths: List[str], metric: str = "cosine") -> str:
    """Write one saved-features ``.npz`` (feats (N, D) float32, pids (N,), camids (N,) int64,
    paths (N,), metric) atomically; returns ``path``."""
    feats = np.asarray(feats, dtype=np.float32)
    pids, camids = np.asarray(pids, dtype=np.int64), np.asarray(camids, dtype=np.int64)
    if feats.ndim != 2 or not len(feats) == len(pids) == len(camids) == len(paths):
        raise ValueError(f"feats {feats.shape}, pids {pids.shape}, camids {camids.shape} and "
                         f"{len(paths)} paths do not describe the same rows")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arrays = dict(feats=feats, pids=pids, camids=camids,
                  paths=np.asarray([str(p) for p in paths]), metric=np.asarray(metric))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return path


def load_split(folder: str, name: str, split: str) -> Split:
    """The validated arrays of ``<name>_<split>.npz``."""
    return read_split(split_file(folder, name, split))


def read_split(path: str) -> Split:
    """The validated arrays (feats (N, D) float32, pids (N,), camids (N,) int64) of one
    saved-features ``.npz``; InputError says what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            present = sorted(data.files)
            missing = [a for a in _ARRAYS if a not in present]
            if missing:
                raise InputError(f"{path} lacks the array(s) {', '.join(missing)} (it has: "
                                 f"{', '.join(present) or 'none'}). Each file needs feats "
                                 f"(N, D), pids (N,) and camids (N,).")
            feats, pids, camids = (data[a] for a in _ARRAYS)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"cannot read {path} as a numpy .npz archive of plain arrays "
                         f"({exc}).") from exc
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise InputError(f"{path}: feats has shape {feats.shape}; it must be a non-empty "
                         f"(N, D) matrix, one feature vector per image.")
    if not np.issubdtype(feats.dtype, np.number) or np.iscomplexobj(feats):
        raise InputError(f"{path}: feats has dtype {feats.dtype}; it must hold real numbers.")
    for array_name, ids in (("pids", pids), ("camids", camids)):
        if ids.shape != (feats.shape[0],) or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"{path}: {array_name} has shape {ids.shape} and dtype "
                             f"{ids.dtype}; it must be {feats.shape[0]} integers, one per "
                             f"row of feats.")
    feats = feats.astype(np.float32, copy=False)
    finite = np.isfinite(feats).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(f"{path}: feats has NaN or inf values in {len(bad)} of {len(feats)} "
                         f"rows (first: row {bad[0]}). Such features cannot be ranked; "
                         f"re-extract them (a diverged model or a failed export is the usual "
                         f"cause).")
    return feats, pids.astype(np.int64), camids.astype(np.int64)


def load_folder(folder: str) -> Tuple[List[str], Dict[str, Split], Dict[str, Split]]:
    """Model names and their query / gallery arrays, checked for consistency across models."""
    names = find_models(folder)
    data = {split: {n: load_split(folder, n, split) for n in names} for split in _SPLITS}
    dims = {f"{n} {s}": data[s][n][0].shape[1] for n in names for s in _SPLITS}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in dims.items())
        raise InputError(f"feature dimensions differ between models ({listed}). Any model's "
                         f"queries are compared with any model's gallery, so every model must "
                         f"produce features of one dimension.")
    for split in _SPLITS:
        ref = names[0]
        for n in names[1:]:
            for i, array_name in ((1, "pids"), (2, "camids")):
                a, b = data[split][ref][i], data[split][n][i]
                if a.shape != b.shape or not np.array_equal(a, b):
                    detail = (f"{len(a)} vs {len(b)} entries" if a.shape != b.shape else
                              f"{int(np.sum(a != b))} of {len(a)} entries differ, first at "
                              f"index {int(np.argmax(a != b))}")
                    raise InputError(f"{split} {array_name} of model '{n}' differ from model "
                                     f"'{ref}' ({detail}). Every model must describe the same "
                                     f"{split} images in the same order.")
    return names, data["query"], data["gallery"]


def evaluate_folder(folder: str, metric: str = "cosine", chunk_size: int = 1024,
                    backend: str = "auto") -> CompatibilityResult:
    """The compatibility matrix of the models in ``folder`` (labels: widths or names).

    Raises InputError for files that cannot be evaluated, ValueError (from the evaluator) when
    no query has a valid gallery match.
    """
    names, query, gallery = load_folder(folder)
    labels = model_labels(names)
    ids = query[names[0]][1:] + gallery[names[0]][1:]
    return evaluate_compatibility(
        {label: query[n][0] for label, n in zip(labels, names)},
        {label: gallery[n][0] for label, n in zip(labels, names)},
        *ids, metric=metric, chunk_size=chunk_size, backend=backend)
