"""The ranked-list picture of ``tools/visualize_ranks.py``, drawn from what an index returned.

Rows are the queries, cells their listed gallery images framed green (same identity) or red.
An index returns k items, not a full ranking, so each row's AP is computed over those k
(positives past them add nothing) and a query whose true matches all lie past them reads
"no true match in the top k", not "in the gallery".
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from PIL import Image

from ...evaluation.list_metrics import list_metrics
from ...evaluation.rank_grid import Panel, draw_rank_grid
from ...evaluation.rank_lists import RankedLists, choose_queries
from .errors import IndexInputError
from .gallery import FeatureSet
from .search import SearchResult, query_matches

__all__ = ["draw_search_result"]


def draw_search_result(result: SearchResult, queries: FeatureSet, g_pids: np.ndarray,
                       g_camids: np.ndarray, g_paths, *, order: str = "worst", count: int = 8,
                       seed: Optional[int] = None, title: str = "index"
                       ) -> Tuple[Image.Image, np.ndarray]:
    """(picture, chosen query rows) of ``count`` queries of ``result``, chosen by ``order``
    (worst | best | random with ``seed``); ``g_*`` (G,) describe the whole gallery."""
    if not all(queries.paths) or not all(g_paths[r] for r in result.indices.ravel() if r >= 0):
        raise IndexInputError("drawing the ranked lists needs every image's file: give the "
                              "query file and the gallery file an array `paths` (or build "
                              "from images with --images).")
    k = result.indices.shape[1]
    matches = query_matches(queries.pids, queries.camids, g_pids, g_camids)
    metrics = list_metrics(result.indices, matches)
    # a true match past the k listed items: rank k + 1 stands for "later", so that such
    # queries stay eligible (worst-first shows them first) and the caption can say so
    first = np.where(metrics.valid & (metrics.first_rank == 0), k + 1, metrics.first_rank)
    lists = RankedLists(result.indices, result.scores, metrics.hits,
                        np.where(metrics.valid, metrics.ap, np.nan), first)
    try:
        chosen = choose_queries(lists, order, count, seed)
    except ValueError as exc:
        raise IndexInputError(f"{exc} (the queries' identities are unknown or absent from "
                              "the gallery).") from None

    def caption(q: int, ranked: RankedLists) -> str:
        rank = int(ranked.first_rank[q])
        where = (f"first match at rank {rank}" if rank <= k else
                 f"no true match in the top {k} ({int(matches.num_pos[q])} in the gallery)")
        return f"query {q}: AP over the top {k} {ranked.ap[q] * 100:.1f}%, {where}"

    image = draw_rank_grid([Panel(title, lists)], chosen, queries.paths, g_paths,
                           caption=caption)
    return image, chosen
