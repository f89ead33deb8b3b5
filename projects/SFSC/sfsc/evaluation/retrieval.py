"""Exact top-k retrieval with a faiss flat index: ranked gallery lists for each query.

For inspecting results and as the input of re-ranking (k-reciprocal neighbours), which need
each query's nearest items rather than the whole ranking. ``IndexFlatIP`` on L2-normalised
features gives cosine similarity, ``IndexFlatL2`` the squared Euclidean distance; both search
exhaustively, so the lists are exact. With faiss-gpu (``faiss.get_num_gpus() > 0``) the index
is copied to every GPU; that path cannot be exercised on CPU-only machines.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .matches import MatchIndex, as_id_array
from .similarity import METRICS, as_feature_array, faiss_num_gpus, normalize

__all__ = ["search_topk", "cmc_from_topk"]

#: faiss-gpu's flat search returns at most this many neighbours per query.
_GPU_MAX_K = 2048


def search_topk(query_feats, gallery_feats, k: int, *, metric: str = "cosine",
                matches: Optional[MatchIndex] = None,
                use_gpu: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` best gallery items (G, D) for every query (Q, D), best first.

    Returns ``(scores (Q, k) float32, indices (Q, k) int64)``; scores are cosine similarities,
    or minus squared Euclidean distances, and indices are -1 past the end of a short list.
    With ``matches`` (``MatchIndex`` of these queries and gallery) junk items (same identity
    and camera as the query) are left out, as the metrics do.
    """
    import faiss  # imported late: some wheels clash with torch's OpenMP when loaded first

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    query = as_feature_array(query_feats, "query features")
    gallery = as_feature_array(gallery_feats, "gallery features")
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query features have dimension {query.shape[1]} but gallery "
                         f"features {gallery.shape[1]}")
    if matches is not None and (matches.num_query, matches.num_gallery) != (len(query),
                                                                              len(gallery)):
        raise ValueError("matches describe a different number of queries or gallery items")
    extra = int(matches.junk_per_query().max(initial=0)) if matches is not None else 0
    depth = min(k + extra, len(gallery))

    if metric == "cosine":
        query, gallery = normalize(query), normalize(gallery)
        index = faiss.IndexFlatIP(gallery.shape[1])
    else:
        index = faiss.IndexFlatL2(gallery.shape[1])
    index.add(gallery)
    if (use_gpu is None or use_gpu) and depth <= _GPU_MAX_K and faiss_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    scores, indices = index.search(query, depth)
    if metric == "euclidean":
        scores = -scores

    if extra:
        junk_pairs = np.flatnonzero(~matches.is_pos)
        junk_rows = np.searchsorted(matches.ptr, junk_pairs, side="right") - 1
        junk_keys = junk_rows * len(gallery) + matches.cols[junk_pairs]
        keys = np.arange(len(query))[:, None] * len(gallery) + indices
        junk = np.isin(keys, junk_keys) & (indices >= 0)
        order = np.argsort(junk, axis=1, kind="stable")  # kept items first, in rank order
        scores = np.take_along_axis(scores, order, axis=1)
        indices = np.where(np.take_along_axis(junk, order, axis=1), -1,
                           np.take_along_axis(indices, order, axis=1))
    scores, indices = scores[:, :k], indices[:, :k].astype(np.int64)
    if indices.shape[1] < k:  # fewer gallery items than k
        pad = k - indices.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        indices = np.pad(indices, ((0, 0), (0, pad)), constant_values=-1)
    scores[indices < 0] = -np.inf
    return np.ascontiguousarray(scores, dtype=np.float32), np.ascontiguousarray(indices)


def cmc_from_topk(indices: np.ndarray, q_pids, g_pids,
                  valid: Optional[np.ndarray] = None,
                  ranks: Sequence[int] = (1, 5, 10)) -> dict:
    """CMC@K (%) from junk-free ranked lists ``indices`` (Q, >= max K), over ``valid`` (Q,)
    queries (default: all); ``q_pids`` (Q,), ``g_pids`` (G,)."""
    q_pids, g_pids = as_id_array(q_pids, "q_pids"), as_id_array(g_pids, "g_pids")
    if indices.shape[1] < max(ranks):
        raise ValueError(f"CMC@{max(ranks)} needs at least {max(ranks)} items per list")
    hit = (indices >= 0) & (g_pids[np.maximum(indices, 0)] == q_pids[:, None])
    if valid is not None:
        hit = hit[np.asarray(valid, dtype=bool)]
    first_hit = np.cumsum(hit, axis=1) > 0
    return {r: float(first_hit[:, r - 1].mean() * 100) for r in ranks}
