"""Searching one index folder, or the shards of one, with query features of any width.

Queries are refused with a named error when their dimension or declared metric differs from
the index's; they are normalised as the index's gallery was. Queries that do not come from the
index's switchable checkpoint (at any width) are searched with a warning (:mod:`.provenance`).
When the queries' identities and cameras are known, the gallery items of a query's identity
under its own camera (junk in the evaluation's protocol) are left out of its list, as the
evaluation leaves them out.
"""
from __future__ import annotations

import logging
import os
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from ...evaluation.list_metrics import drop_junk
from ...evaluation.matches import MatchIndex
from ...fastreid.checkpoint import atomic_write_bytes
from .devices import to_device
from .errors import DimensionMismatchError, MetricMismatchError
from .faiss_ops import prepare, set_search_parameters, to_scores
from .gallery import UNKNOWN, FeatureSet
from .provenance import query_source_warning
from .shards import check_shards, merge_topk
from .store import IndexFolder

__all__ = ["SearchResult", "check_queries", "describe", "gallery_ids", "query_matches",
           "save_search_result", "search_folders"]

logger = logging.getLogger(__name__)


class SearchResult(NamedTuple):
    """Top-k lists of Q queries, best first; -1 / -inf / "" past the end of a short list."""

    indices: np.ndarray  # (Q, k) int64 gallery rows
    scores: np.ndarray  # (Q, k) float32: cosine similarity, or minus squared L2 distance
    pids: np.ndarray  # (Q, k) int64 identities of the listed rows
    paths: np.ndarray  # (Q, k) str image files of the listed rows
    metric: str


def check_queries(meta: dict, dim: int, metric: Optional[str], what: str = "the queries"
                  ) -> None:
    """DimensionMismatchError / MetricMismatchError unless ``dim``-d features declared for
    ``metric`` (None: not declared) can be searched in an index recorded by ``meta``."""
    if dim != meta["dim"]:
        model = meta.get("model") or {}
        made = f" (made by {model.get('checkpoint') or model.get('path')})" if model else ""
        raise DimensionMismatchError(
            f"{what} are {dim}-d but the index holds {meta['dim']}-d features{made}: they come "
            "from a model whose features are not comparable with the index's. Use a sub-model "
            "of the switchable model that built the index.")
    if metric is not None and metric != meta["metric"]:
        raise MetricMismatchError(
            f"{what} are meant for {metric} similarity but the index ranks by {meta['metric']}: "
            f"scores would mean something else. Search with --metric {meta['metric']}, or build "
            f"the index with --metric {metric}.")


def gallery_ids(folders: Sequence[IndexFolder]):
    """(pids, camids, paths) of the whole gallery, in row order, from its shards."""
    ordered = sorted(folders, key=lambda f: f.row_start)
    return (np.concatenate([f.pids for f in ordered]),
            np.concatenate([f.camids for f in ordered]), [p for f in ordered for p in f.paths])


def query_matches(q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray,
                  g_camids: np.ndarray) -> MatchIndex:
    """The evaluation's MatchIndex, with unknown query identities (-1) matching nothing."""
    q_pids = np.asarray(q_pids, np.int64).copy()
    unknown = q_pids == UNKNOWN
    if unknown.any():
        q_pids[unknown] = min(int(g_pids.min(initial=0)), 0) - 1  # an identity no row has
    return MatchIndex.build(q_pids, q_camids, g_pids, g_camids)


def search_folders(folders: Sequence[IndexFolder], queries: FeatureSet, k: int = 10, *,
                   metric: Optional[str] = None, nprobe: Optional[int] = None,
                   ef_search: Optional[int] = None, exclude_junk: bool = True,
                   device: str = "cpu") -> SearchResult:
    """Top-``k`` gallery rows of every query in the index folder(s) ``folders`` (the shards
    of one gallery, merged by score)."""
    ordered = check_shards(folders)
    meta = ordered[0].meta
    what = f"the queries of {queries.source}"
    check_queries(meta, queries.feats.shape[1], metric or queries.metric, what)
    warning = query_source_warning(meta.get("model"), queries.model, what)
    if warning:
        logger.warning(warning)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    query = prepare(queries.feats, meta["metric"], f"features of {queries.source}")
    g_pids, g_camids, g_paths = gallery_ids(ordered)
    matches = None
    extra = 0
    if exclude_junk and (queries.pids != UNKNOWN).any():
        matches = query_matches(queries.pids, queries.camids, g_pids, g_camids)
        extra = int(matches.junk_per_query().max(initial=0))
    depth = min(k + extra, len(g_pids))
    parts = []
    for folder in ordered:
        index = to_device(folder.index, device)
        set_search_parameters(index, nprobe, ef_search)
        distances, local = index.search(query, min(depth, max(folder.index.ntotal, 1)))
        rows = np.where(local >= 0, local + folder.row_start, -1)
        parts.append((to_scores(distances, meta["metric"]), rows))
    scores, rows = merge_topk(parts, depth) if len(parts) > 1 else parts[0]
    if matches is not None:
        rows, scores = drop_junk(rows, scores, matches)
    rows, scores = _pad(rows[:, :k], scores[:, :k], k)
    listed = np.maximum(rows, 0)
    pids = np.where(rows >= 0, g_pids[listed], UNKNOWN)
    paths = np.where(rows >= 0, np.asarray(g_paths, dtype=str)[listed], "")
    return SearchResult(rows.astype(np.int64), scores.astype(np.float32), pids, paths,
                        meta["metric"])


def _pad(rows: np.ndarray, scores: np.ndarray, k: int):
    if rows.shape[1] < k:  # fewer gallery items than k
        pad = ((0, 0), (0, k - rows.shape[1]))
        rows = np.pad(rows, pad, constant_values=-1)
        scores = np.pad(scores, pad, constant_values=-np.inf)
    return rows, np.where(rows < 0, -np.inf, scores)


def save_search_result(path: str, result: SearchResult, queries: FeatureSet) -> str:
    """Write ``result`` with the queries' ids and paths as an ``.npz``; its path."""
    path = path if path.endswith(".npz") else path + ".npz"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arrays = dict(indices=result.indices, scores=result.scores, pids=result.pids,
                  paths=result.paths, metric=np.asarray(result.metric),
                  query_pids=queries.pids, query_camids=queries.camids,
                  query_paths=np.asarray(queries.paths, dtype=str))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return path


def describe(result: SearchResult, limit: int = 3) -> List[str]:
    """A few lines of the first queries' lists, for a command line to print."""
    lines = []
    for q in range(min(limit, len(result.indices))):
        items = [f"{row}({score:.3f})" for row, score in
                 zip(result.indices[q][:5], result.scores[q][:5]) if row >= 0]
        lines.append(f"query {q}: " + " ".join(items))
    return lines
