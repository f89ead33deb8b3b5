"""An index folder on disk: the faiss index, what its rows are, and how it was made.

``DIR/index.faiss`` is the faiss index (its ids are row numbers local to the folder);
``DIR/gallery.npz`` holds ``pids``, ``camids`` and ``paths`` of those rows; ``DIR/index.json``
records the factory string, metric, dimension, the model and width that made the features,
which rows of the whole gallery the folder holds (``rows``: [start, stop)), the shard, and the
checksum of the trained empty index every shard of one gallery must share.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import List, NamedTuple

import numpy as np

from ...fastreid.checkpoint import atomic_write_bytes
from .errors import IndexInputError
from .faiss_import import import_faiss

__all__ = ["FORMAT", "IndexFolder", "load_index_folder", "save_index_folder", "trained_checksum"]

FORMAT = {"format": "sfsc-gallery-index", "version": 1}
_FILES = ("index.faiss", "index.json", "gallery.npz")


class IndexFolder(NamedTuple):
    """A loaded index folder: ``index`` holds rows ``meta['rows']`` of the whole gallery."""

    path: str
    index: object  # faiss.Index (CPU)
    meta: dict
    pids: np.ndarray  # (n,) int64
    camids: np.ndarray  # (n,) int64
    paths: List[str]  # n image files ("" where unknown)

    @property
    def row_start(self) -> int:
        return int(self.meta["rows"][0])


def trained_checksum(index) -> str:
    """sha256 prefix of the serialised index: equal for shards built from one trained index."""
    faiss = import_faiss()
    return hashlib.sha256(faiss.serialize_index(index).tobytes()).hexdigest()[:16]


def save_index_folder(folder: str, index, meta: dict, pids: np.ndarray, camids: np.ndarray,
                      paths: List[str]) -> str:
    """Write ``index`` (CPU), ``meta`` and the rows' ids into ``folder``; its path."""
    faiss = import_faiss()
    if not (len(pids) == len(camids) == len(paths) == index.ntotal):
        raise ValueError(f"{index.ntotal} indexed vectors but {len(pids)} pids, {len(camids)} "
                         f"camids and {len(paths)} paths")
    os.makedirs(folder, exist_ok=True)
    # streamed: a serialised copy of a large index would double its memory
    atomic_write_bytes(os.path.join(folder, "index.faiss"),
                       lambda f: faiss.write_index(index, faiss.PyCallbackIOWriter(f.write)))
    atomic_write_bytes(os.path.join(folder, "gallery.npz"), lambda f: np.savez(
        f, pids=np.asarray(pids, np.int64), camids=np.asarray(camids, np.int64),
        paths=np.asarray(paths, dtype=str)))
    text = json.dumps({**FORMAT, **meta}, indent=2) + "\n"
    atomic_write_bytes(os.path.join(folder, "index.json"), lambda f: f.write(text.encode()))
    return folder


def load_index_folder(folder: str) -> IndexFolder:
    """The index folder ``folder``; IndexInputError if it is not a complete one."""
    faiss = import_faiss()
    missing = [f for f in _FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise IndexInputError(f"{folder} is not an index folder: it lacks {', '.join(missing)}. "
                              "Build one with tools/build_index.py --output FOLDER.")
    try:
        with open(os.path.join(folder, "index.json"), encoding="utf-8") as f:
            meta = json.load(f)
        with np.load(os.path.join(folder, "gallery.npz"), allow_pickle=False) as data:
            pids, camids = data["pids"].astype(np.int64), data["camids"].astype(np.int64)
            paths = [str(p) for p in data["paths"]]
        index = faiss.read_index(os.path.join(folder, "index.faiss"))
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as exc:
        raise IndexInputError(f"cannot read the index folder {folder} ({exc}).") from None
    if any(meta.get(k) != v for k, v in FORMAT.items()):
        raise IndexInputError(f"{folder}/index.json is not a {FORMAT['format']} version "
                              f"{FORMAT['version']} record; rebuild the index with this code.")
    if not (len(pids) == len(camids) == len(paths) == index.ntotal == meta["ntotal"]):
        raise IndexInputError(f"{folder}: the index holds {index.ntotal} vectors, index.json "
                              f"says {meta['ntotal']} and gallery.npz names {len(pids)} rows; "
                              "the folder is damaged, rebuild it.")
    return IndexFolder(os.path.abspath(folder), index, meta, pids, camids, paths)
