"""Ranked gallery lists of a query model against a gallery model, and which queries to show.

The lists follow the evaluator's protocol exactly: the same :class:`MatchIndex` decides what
is junk (the query's identity under the query's camera, left out of the list) and what is a
positive, :func:`search_topk` returns the junk-free top k, and :func:`evaluate_ranking` gives
each query's AP and the rank of its first true match, as in the compatibility matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .matches import MatchIndex, as_id_array
from .ranking import evaluate_ranking
from .retrieval import search_topk

__all__ = ["ORDERS", "RankedLists", "ranked_lists", "choose_queries"]

#: How the shown queries are picked: lowest AP first, highest AP first, or a seeded sample.
ORDERS = ("worst", "best", "random")


@dataclass(frozen=True)
class RankedLists:
    """Top-k lists of Q queries; ``ap`` NaN and ``first_rank`` 0 for queries without a positive.

    ``indices`` (Q, k) int64 gallery rows, best first, -1 past the end of a short list;
    ``same_id`` (Q, k) bool: the item has the query's identity (always another camera: junk is
    excluded); ``ap`` (Q,) float64 in [0, 1]; ``first_rank`` (Q,) int64, 1-based.
    """

    indices: np.ndarray
    scores: np.ndarray
    same_id: np.ndarray
    ap: np.ndarray
    first_rank: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """(Q,) bool: queries with a true match in the gallery (the evaluated ones)."""
        return self.first_rank > 0


def ranked_lists(query_feats, gallery_feats, q_pids, q_camids, g_pids, g_camids, k: int = 10,
                 metric: str = "cosine") -> RankedLists:
    """Junk-free top-``k`` lists and per-query AP / first-match rank of queries (Q, D) against
    a gallery (G, D), with integer identities and cameras (Q,) / (G,)."""
    q_pids, g_pids = as_id_array(q_pids, "q_pids"), as_id_array(g_pids, "g_pids")
    matches = MatchIndex.build(q_pids, q_camids, g_pids, g_camids)
    scores, indices = search_topk(query_feats, gallery_feats, k, metric=metric, matches=matches)
    same_id = (indices >= 0) & (g_pids[np.maximum(indices, 0)] == q_pids[:, None])
    ranks = evaluate_ranking(query_feats, gallery_feats, q_pids, q_camids, g_pids, g_camids,
                             metric=metric, backend="torch").per_query
    return RankedLists(indices, scores, same_id, ranks.ap, ranks.first_rank)


def choose_queries(lists: RankedLists, order: str, count: int,
                   seed: Optional[int] = None) -> np.ndarray:
    """Indices of ``count`` evaluated queries in display order.

    ``worst``: lowest AP first (a later first match breaks ties); ``best``: highest AP first;
    ``random``: a sample drawn with ``seed``, in query order.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    candidates = np.flatnonzero(lists.valid)
    if not len(candidates):
        raise ValueError("no query has a true match in the gallery (same identity, other "
                         "camera): there is nothing to show")
    count = min(count, len(candidates))
    if order == "random":
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, size=count, replace=False))
    ap, first = lists.ap[candidates], lists.first_rank[candidates]
    if order == "worst":
        keys = (candidates, -first, ap)  # np.lexsort: the last key sorts first
    else:
        keys = (candidates, first, -ap)
    return candidates[np.lexsort(keys)][:count]
