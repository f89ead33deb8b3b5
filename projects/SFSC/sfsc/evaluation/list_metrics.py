"""Metrics of truncated ranked lists, such as an approximate index returns.

An index answers each query with its best ``depth`` gallery rows, not a full ranking. These
functions apply the evaluator's protocol to such lists: junk (the query's identity under the
query's camera) is dropped, AP counts every positive of the whole gallery in its denominator
(a positive past the end of the list adds nothing), and the rank of the first true match is
0 when none is in the list. With a list that holds the whole gallery, AP equals the one
:func:`~sfsc.evaluation.ranking.evaluate_ranking` computes.
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .matches import MatchIndex

__all__ = ["ListMetrics", "drop_junk", "list_metrics"]


class ListMetrics(NamedTuple):
    """Per-query results of lists (Q, depth); ``valid`` queries have a positive in the gallery."""

    ap: np.ndarray  # (Q,) float64 in [0, 1]; NaN where the query is not valid
    first_rank: np.ndarray  # (Q,) int64, 1-based; 0: no positive in the list
    hits: np.ndarray  # (Q, depth) bool: the item is a positive
    valid: np.ndarray  # (Q,) bool

    def summary(self) -> dict:
        """mAP and Rank-1 (%) over the valid queries, and how many there are."""
        valid = self.valid
        if not valid.any():
            raise ValueError("no query has a positive in the gallery (same identity, other "
                             "camera): there is nothing to score")
        return {"mAP": float(np.mean(self.ap[valid]) * 100),
                "R1": float(np.mean(self.first_rank[valid] == 1) * 100),
                "num_valid": int(valid.sum())}


def _pair_keys(matches: MatchIndex, which: np.ndarray) -> np.ndarray:
    """Sorted query * G + gallery keys of the (query, gallery) pairs ``which`` selects."""
    pairs = np.flatnonzero(which)
    rows = np.searchsorted(matches.ptr, pairs, side="right") - 1
    return np.sort(rows * matches.num_gallery + matches.cols[pairs])


def _list_keys(indices: np.ndarray, matches: MatchIndex) -> np.ndarray:
    rows = np.arange(len(indices), dtype=np.int64)[:, None]
    return rows * matches.num_gallery + np.maximum(indices, 0)


def _check(indices: np.ndarray, matches: MatchIndex) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or len(indices) != matches.num_query:
        raise ValueError(f"lists have shape {indices.shape}; the matches describe "
                         f"{matches.num_query} queries")
    if indices.size and indices.max() >= matches.num_gallery:
        raise ValueError(f"lists hold gallery row {int(indices.max())}; the gallery has "
                         f"{matches.num_gallery} rows")
    return indices


def drop_junk(indices: np.ndarray, scores: np.ndarray, matches: MatchIndex
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Lists (Q, depth) without junk items, order kept; the freed tail holds -1 / -inf."""
    indices = _check(indices, matches)
    junk = np.isin(_list_keys(indices, matches), _pair_keys(matches, ~matches.is_pos))
    junk &= indices >= 0
    order = np.argsort(junk, axis=1, kind="stable")  # kept items first, in rank order
    kept = ~np.take_along_axis(junk, order, axis=1)
    out_idx = np.where(kept, np.take_along_axis(indices, order, axis=1), -1)
    out_scores = np.where(kept, np.take_along_axis(np.asarray(scores), order, axis=1), -np.inf)
    return out_idx, out_scores.astype(np.float32)


def list_metrics(indices: np.ndarray, matches: MatchIndex) -> ListMetrics:
    """AP and first-match rank of junk-free lists (Q, depth) of gallery rows (-1: no item)."""
    indices = _check(indices, matches)
    hits = np.isin(_list_keys(indices, matches), _pair_keys(matches, matches.is_pos))
    hits &= indices >= 0
    ranks = np.arange(1, indices.shape[1] + 1)
    precision_at_hits = np.cumsum(hits, axis=1) / ranks * hits
    valid = matches.num_pos > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(valid, precision_at_hits.sum(axis=1) / matches.num_pos, np.nan)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0).astype(np.int64)
    return ListMetrics(ap, first, hits, valid)
