"""Shards of one gallery index: checking they belong together, merging them into one index,
and merging their top-k lists (each shard searched where it lives).

Both ways give what one index built from the same trained index returns: an IVF shard's
vectors sit in the inverted lists the shared quantiser assigns them to, so merging the lists
(faiss's ``merge_from``, ids shifted to gallery rows) rebuilds that index, and a query's top k
over the whole gallery is the top k of the union of every shard's top k.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .errors import IndexInputError
from .faiss_import import import_faiss
from .faiss_ops import ivf_of
from .store import IndexFolder

__all__ = ["check_shards", "merge_index_folders", "merge_topk"]

_SHARED = ("factory", "metric", "dim")


def check_shards(folders: Sequence[IndexFolder]) -> List[IndexFolder]:
    """``folders`` in row order, checked to be disjoint parts of one gallery's index that
    together cover it; IndexInputError says which do not fit."""
    if not folders:
        raise IndexInputError("no index folder given.")
    ordered = sorted(folders, key=lambda f: f.row_start)
    first = ordered[0].meta
    for folder in ordered[1:]:
        meta = folder.meta
        for key in _SHARED:
            if meta[key] != first[key]:
                raise IndexInputError(f"{folder.path} has {key} {meta[key]!r} but "
                                      f"{ordered[0].path} has {first[key]!r}: they are not "
                                      "shards of one index.")
        if meta["trained"]["checksum"] != first["trained"]["checksum"]:
            raise IndexInputError(f"{folder.path} and {ordered[0].path} start from different "
                                  "trained indexes (their centroids differ), so their results "
                                  "do not mix. Build every shard with the same --trained.")
        if meta["gallery"]["size"] != first["gallery"]["size"]:
            raise IndexInputError(f"{folder.path} is a part of a {meta['gallery']['size']}-row "
                                  f"gallery, {ordered[0].path} of a {first['gallery']['size']}"
                                  "-row one.")
    expected = 0
    for folder in ordered:
        start, stop = folder.meta["rows"]
        if start != expected:
            what = (f"rows {expected}-{start} are in none of them" if start > expected else
                    f"rows {start}-{expected} are in two of them")
            raise IndexInputError(f"the shards do not split the gallery cleanly: {what} "
                                  f"(at {folder.path}). Pass every shard of one build once.")
        expected = stop
    total = first["gallery"]["size"]
    if expected != total:
        raise IndexInputError(f"the shards cover rows 0-{expected} of a {total}-row gallery; "
                              f"the shard(s) with rows {expected}-{total} are missing.")
    return ordered


def merge_topk(parts: Sequence[Tuple[np.ndarray, np.ndarray]], k: int
               ) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several (scores (Q, k_i), gallery rows (Q, k_i)) lists per query, best
    first; rows -1 (no item) sort last."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    rows = np.concatenate([r for _, r in parts], axis=1)
    scores = np.where(rows < 0, -np.inf, scores)
    # stable, so that equal scores keep shard order, as one index lists them
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(scores, order, axis=1).astype(np.float32),
            np.take_along_axis(rows, order, axis=1))


def merge_index_folders(folders: Sequence[IndexFolder]):
    """One CPU index of the shards ``folders`` (ids = gallery rows), with its record and the
    rows' (pids, camids, paths)."""
    faiss = import_faiss()
    ordered = check_shards(folders)
    merged = faiss.clone_index(ordered[0].index)
    target = ivf_of(merged)
    for folder in ordered[1:]:
        try:
            if target is not None:  # ids are local to each shard: shift them to gallery rows
                target.merge_from(ivf_of(folder.index), folder.row_start)
            else:  # sequential ids: appending the shards in row order numbers them right
                merged.merge_from(folder.index, 0)
        except RuntimeError as exc:
            raise IndexInputError(f"faiss cannot merge {ordered[0].meta['factory']!r} shards "
                                  f"({str(exc).strip().splitlines()[-1]}); search them "
                                  "together instead (search_index.py --index A B ...), which "
                                  "merges their top-k lists.") from None
    if target is not None and target is not merged:
        merged.ntotal = target.ntotal  # a wrapper (pre-transform) counts its own vectors
    meta = dict(ordered[0].meta, ntotal=int(merged.ntotal),
                rows=[0, ordered[-1].meta["rows"][1]], shard=None,
                merged_from=[f.path for f in ordered])
    pids = np.concatenate([f.pids for f in ordered])
    camids = np.concatenate([f.camids for f in ordered])
    paths = [p for f in ordered for p in f.paths]
    return merged, meta, pids, camids, paths
