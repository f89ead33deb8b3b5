"""Features to index or to query with: a saved-features file, or a model run on a folder of
images with the evaluation's preprocessing.

Files are either the project's ``.npz`` (``feats`` (N, D), ``pids`` (N,), ``camids`` (N,),
as :mod:`sfsc.evaluation.feature_files` reads them; optionally ``paths`` (N,), the image of
each row, and ``metric``, the similarity the features are meant for), or the ``.npy``
of ``tools/extract_features.py`` with its ``.json`` beside it. Where identities are not given
they are read from Market-1501 file names (``0042_c3s2_004711_01.jpg``), else -1 (unknown).
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ...data.datasets import parse_name
from ...evaluation.feature_files import InputError, model_labels, read_split
from ..extraction import extract_files
from ..image_sources import list_images
from ..loading import LoadedModel
from .encoding import evaluation_encoder
from .errors import IndexInputError

__all__ = ["FeatureSet", "extract_feature_set", "ids_from_names", "load_feature_set"]

UNKNOWN = -1  # identity or camera of an image whose name does not tell it


class FeatureSet(NamedTuple):
    """Features of N images and what is known about them and the model that made them."""

    feats: np.ndarray  # (N, D) float32
    pids: np.ndarray  # (N,) int64, -1: unknown
    camids: np.ndarray  # (N,) int64, 0-based, -1: unknown
    paths: List[str]  # N image files ("" where unknown)
    source: str  # the file or image folder they come from
    model: Optional[dict]  # what made them (kind, checkpoint / path), when known
    width: Optional[float]  # the sub-model's width, when known
    metric: Optional[str] = None  # the similarity they were made for, when the file says


def ids_from_names(names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(pids, 0-based camids) (N,) int64 parsed from Market-1501 file names; -1 where a name
    is not one."""
    pids = np.full(len(names), UNKNOWN, dtype=np.int64)
    camids = np.full(len(names), UNKNOWN, dtype=np.int64)
    for i, name in enumerate(names):
        try:
            pid, cam = parse_name(os.path.basename(name))[:2]
        except ValueError:
            continue
        pids[i], camids[i] = pid, cam - 1  # FastReID counts cameras from 0
    return pids, camids


def _width_of_name(path: str) -> Optional[float]:
    """The width a feature file's name spells (``0.25_query.npz`` -> 0.25), or None."""
    stem = os.path.basename(path).split("_")[0]
    label = model_labels([stem])[0]
    return label if isinstance(label, float) else None


def _load_npz(path: str) -> FeatureSet:
    try:
        feats, pids, camids = read_split(path)
        with np.load(path, allow_pickle=False) as data:
            paths = [str(p) for p in data["paths"]] if "paths" in data.files else []
            metric = str(data["metric"]) if "metric" in data.files else None
    except (InputError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise IndexInputError(str(exc)) from None
    if paths and len(paths) != len(feats):
        raise IndexInputError(f"{path}: paths has {len(paths)} entries for {len(feats)} rows "
                              "of feats; it must name the image of every row.")
    base = os.path.dirname(os.path.abspath(path))
    paths = [p if not p or os.path.isabs(p) else os.path.join(base, p) for p in paths]
    model = _model_beside(path)
    width = model.get("width") if model and model.get("width") is not None \
        else _width_of_name(path)
    return FeatureSet(feats, pids, camids, paths or [""] * len(feats), os.path.abspath(path),
                      model, width, metric)


def _model_beside(path: str) -> Optional[dict]:
    """The ``model`` entry of ``<name>.json`` beside ``<name>_query.npz`` / ``_gallery.npz``
    (tools/extract_features.py --dataset writes it), when there is one."""
    stem, _, split = os.path.basename(path)[:-len(".npz")].rpartition("_")
    info_path = os.path.join(os.path.dirname(path), f"{stem}.json")
    if split not in ("query", "gallery") or not os.path.isfile(info_path):
        return None
    try:
        with open(info_path, encoding="utf-8") as f:
            model = json.load(f).get("model")
    except (OSError, ValueError, AttributeError) as exc:
        raise IndexInputError(f"cannot read {info_path}, which describes {path} ({exc}).") \
            from None
    return model if isinstance(model, dict) else None


def _load_npy(path: str) -> FeatureSet:
    index_path = os.path.splitext(path)[0] + ".json"
    if not os.path.isfile(index_path):
        raise IndexInputError(f"{path} has no {os.path.basename(index_path)} beside it: a .npy "
                              "from tools/extract_features.py needs its JSON index (image "
                              "names, model). Pass that pair, or an .npz with feats, pids "
                              "and camids.")
    try:
        feats = np.load(path, allow_pickle=False)
        with open(index_path, encoding="utf-8") as f:
            info = json.load(f)
        names = list(info["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexInputError(f"cannot read {path} with {index_path} ({exc}).") from None
    if feats.ndim != 2 or len(feats) != len(names):
        raise IndexInputError(f"{path} holds features of shape {feats.shape} but its JSON names "
                              f"{len(names)} images: they do not belong together.")
    base = info.get("source", os.path.dirname(os.path.abspath(path)))
    base = base if os.path.isdir(base) else os.path.dirname(base)
    paths = [n if os.path.isabs(n) else os.path.join(base, n) for n in names]
    model = info.get("model") or None
    width = model.get("width") if isinstance(model, dict) else None
    return FeatureSet(feats.astype(np.float32), *ids_from_names(names), paths,
                      os.path.abspath(path), model, width)


def load_feature_set(path: str) -> FeatureSet:
    """The features of a saved-features ``.npz``, or of a ``.npy`` + ``.json`` pair."""
    if not os.path.isfile(path):
        raise IndexInputError(f"{path} does not exist: pass a saved-features .npz (feats, pids, "
                              "camids) or a .npy written by tools/extract_features.py.")
    return _load_npy(path) if path.endswith(".npy") else _load_npz(path)


def extract_feature_set(images: str, loaded: LoadedModel, width: float, batch_size: int = 64,
                        workers: int = 2) -> FeatureSet:
    """Features of the images in folder / list file ``images`` from the switchable model at
    ``width``, computed as the evaluation computes them (test transforms, flip)."""
    encoder = evaluation_encoder(loaded, width)
    listed = list_images(images)
    result = extract_files(listed, encoder, batch_size, False, workers)
    by_name = dict(listed)
    paths = [by_name[name] for name in result.names]
    return FeatureSet(result.features, *ids_from_names(result.names), paths,
                      os.path.abspath(images), encoder.model, encoder.model["width"])
