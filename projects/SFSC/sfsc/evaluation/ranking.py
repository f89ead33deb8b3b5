"""Exact ReID ranking metrics of one query set against one gallery, in bounded memory.

Metrics follow FastReID's ``eval_market1501``: junk (same identity and camera) is removed,
distractors are kept, queries without a positive are skipped. Only the ranks of the positives
matter: if ``r_k`` is the rank of a query's k-th best positive among the kept items, then
``r_k = k + #(kept negatives scoring at least as high)``, ``AP = mean_k k / r_k``,
``CMC@K = [r_1 <= K]`` and ``INP = n / r_n``. A negative tied with a positive is ranked above
it, so a model that cannot tell items apart gets the worst, not the best, score.

Queries are processed ``chunk_size`` at a time and no (Q, G) array is ever built: a block's
scores (chunk_size, G) are computed, the negatives scoring below the query's worst positive
(usually most of them) are discarded with one comparison, the rest are sorted once on exact
integer keys ``(row, score)``, and each positive finds its rank by binary search.
"""
from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .array_ops import ArrayOps
from .matches import MatchIndex
from .similarity import Scorer, make_scorer

__all__ = ["CMC_RANKS", "QueryBlock", "QueryRanks", "ScoreHook", "RankMetrics", "rank_positives",
           "rank_queries", "summarize", "evaluate_ranking", "working_memory_bytes"]

CMC_RANKS = (1, 5, 10)
#: Elements (negatives above the threshold + positives) sorted at once; bounds the key arrays.
MAX_SORT_ELEMENTS = 1 << 22
#: Score blocks are computed with at least this many query rows (see ``rank_queries``).
MIN_BLOCK_ROWS = 64


class QueryBlock(NamedTuple):
    """Where a score block comes from: queries ``start:stop`` of a (query, gallery) pair."""

    start: int
    stop: int
    query_label: Any = None
    gallery_label: Any = None


#: ``hook(scores (c, G), block) -> scores (c, G)``: post-processes a block before ranking
#: (re-ranking, query expansion). Higher must stay more similar; NaN is not allowed.
ScoreHook = Callable[[Any, QueryBlock], Any]


@dataclass
class QueryRanks:
    """Per-query results of one (query set, gallery) pair; skipped queries hold NaN / 0."""

    ap: np.ndarray  # (Q,) float64 average precision
    first_rank: np.ndarray  # (Q,) int64 1-based rank of the best positive
    inp: np.ndarray  # (Q,) float64 inverse negative penalty

    @classmethod
    def empty(cls, num_query: int) -> QueryRanks:
        return cls(np.full(num_query, np.nan), np.zeros(num_query, np.int64),
                   np.full(num_query, np.nan))


@dataclass(frozen=True)
class RankMetrics:
    """FastReID's metrics in percent over the ``num_valid`` evaluated queries."""

    mAP: float
    cmc: Dict[int, float]  # rank K -> CMC@K (%)
    mINP: float
    num_valid: int
    num_skipped: int
    per_query: Optional[QueryRanks] = field(default=None, repr=False, compare=False)

    def as_dict(self) -> Dict[str, float]:
        """``{"mAP", "R1", "R5", "R10", "mINP"}`` in percent."""
        return {"mAP": self.mAP, **{f"R{k}": v for k, v in self.cmc.items()}, "mINP": self.mINP}


def _row_groups(sizes: np.ndarray, budget: int):
    """Consecutive row ranges whose ``sizes`` sum to about ``budget`` (one row may exceed it)."""
    starts = np.cumsum(sizes) - sizes
    group = starts // max(1, budget)
    edges = np.flatnonzero(np.diff(group)) + 1
    bounds = np.concatenate([[0], edges, [len(sizes)]])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def rank_positives(scores, rows: np.ndarray, cols: np.ndarray, is_pos: np.ndarray,
                   use_torch: Optional[bool] = None, max_elements: int = MAX_SORT_ELEMENTS,
                   ties: str = "pessimistic") -> Tuple[np.ndarray, ...]:
    """Per-query AP (c,), rank of the best positive (c,) and INP (c,) of one score block.

    ``scores`` (c, G) float32, numpy or torch (higher = more similar), is overwritten: the
    same-identity entries become NaN. ``rows``/``cols``/``is_pos`` (P,) list each query's
    same-identity gallery items (``MatchIndex.chunk``). Torch blocks are ranked with torch
    when they live off the CPU (or ``use_torch``), else with numpy. Rows without positives
    get NaN / 0 / NaN. ``ties="optimistic"`` ranks a positive above the negatives it ties
    with (the best case of an arbitrary tie order; the default is the worst case).
    """
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
    side = "left" if ties == "pessimistic" else "right"
    if hasattr(scores, "detach"):
        if use_torch is None:
            use_torch = scores.device.type != "cpu"
        if not use_torch:
            scores = scores.numpy()
    ops = ArrayOps(scores.device if use_torch else None)
    c, num_gallery = scores.shape
    rows_t, cols_t = ops.index(rows), ops.index(cols)
    vals = scores[rows_t, cols_t]
    scores[rows_t, cols_t] = float("nan")  # removes positives and junk: NaN fails every >=
    pos_t = ops.index(is_pos)
    prow, pval = rows_t[pos_t], vals[pos_t]
    npos_np = np.bincount(rows[is_pos], minlength=c)
    pstart_np = np.cumsum(npos_np) - npos_np
    npos, pstart = ops.index(npos_np), ops.index(pstart_np)
    thresholds = ops.row_min(pval, prow, pstart_np, npos_np, c)
    # Negatives below a query's worst positive cannot change any of its positives' ranks.
    mask = scores >= thresholds[:, None]
    if int(ops.count(mask)) + len(pval) <= max_elements:
        groups = [(0, c)]
    else:
        groups = _row_groups(ops.numpy(ops.count_rows(mask)) + npos_np, max_elements)

    ap = np.full(c, np.nan)
    first = np.zeros(c, np.int64)
    inp = np.full(c, np.nan)
    for r0, r1 in groups:
        p0, p1 = int(pstart_np[r0]), int(pstart_np[r1 - 1] + npos_np[r1 - 1])
        if p1 == p0:
            continue
        n = r1 - r0
        flat = ops.flatnonzero(mask[r0:r1].reshape(-1))
        neg_rows = flat // num_gallery
        neg_keys = ops.sort_(ops.keys(scores[r0:r1].reshape(-1)[flat], neg_rows))
        neg_end = ops.cumsum(ops.bincount(neg_rows, n))
        del flat, neg_rows
        # Positives in (row, score) order; the negatives ranked above a positive are those
        # of its row whose keys are not below its key (pessimistic) or above it (optimistic).
        pos_keys = ops.sort_(ops.keys(pval[p0:p1], prow[p0:p1] - r0))
        r = pos_keys >> 32
        above = neg_end[r] - ops.searchsorted(neg_keys, pos_keys, side)
        g_npos = npos[r0:r1]
        k = g_npos[r] - (ops.arange(p1 - p0) - (pstart[r0:r1][r] - p0))  # 1 = best positive
        rank = ops.f64(k + above)
        g_ap = ops.bincount(r, n, weights=ops.f64(k) / rank) / g_npos.clip(min=1)
        best, worst = k == 1, k == g_npos[r]
        g_first = ops.bincount(r[best], n, weights=rank[best])
        g_inp = ops.bincount(r[worst], n, weights=ops.f64(g_npos[r][worst]) / rank[worst])
        has = npos_np[r0:r1] > 0
        ap[r0:r1][has] = ops.numpy(g_ap)[has]
        first[r0:r1][has] = ops.numpy(g_first)[has].astype(np.int64)
        inp[r0:r1][has] = ops.numpy(g_inp)[has]
    return ap, first, inp


def working_memory_bytes(chunk_size: int, num_gallery: int, overlap: bool = True,
                         max_elements: int = MAX_SORT_ELEMENTS) -> int:
    """Upper estimate of the ranking's scratch memory (bytes) beyond the features."""
    block = chunk_size * num_gallery
    scores = block * 4 * (2 if overlap else 1)
    # mask: 1 byte per score; sort keys with their temporaries: ~48 bytes per kept element.
    return scores + block + 48 * min(block, max_elements)


def rank_queries(scorer: Scorer, query, gallery, matches: MatchIndex, chunk_size: int = 1024,
                 score_hook: Optional[ScoreHook] = None, labels: Tuple[Any, Any] = (None, None),
                 buffers: Optional[List[Any]] = None) -> QueryRanks:
    """Per-query ranks of prepared query features (Q, D') against a prepared gallery (G, D').

    Memory is bounded by ``chunk_size`` x G scores (two blocks when ranking one overlaps
    computing the next), never Q x G. ``buffers``: up to two reusable (>= chunk_size, G)
    score blocks from ``scorer.empty``; ``labels`` (query model, gallery model) are passed
    to ``score_hook``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_query, num_gallery = matches.num_query, matches.num_gallery
    if query.shape[0] != num_query or gallery.shape[0] != num_gallery:
        raise ValueError(f"features have {query.shape[0]} query / {gallery.shape[0]} gallery "
                         f"rows but the ids describe {num_query} / {num_gallery}")
    out = QueryRanks.empty(num_query)
    blocks = [(s, min(num_query, s + chunk_size)) for s in range(0, num_query, chunk_size)
              if matches.num_pos[s:s + chunk_size].any()]
    if not blocks:
        return out
    overlap = scorer.overlap and len(blocks) > 1
    buffers = list(buffers or [])
    while len(buffers) < (2 if overlap else 1):
        buffers.append(scorer.empty(min(chunk_size, num_query), num_gallery))

    # BLAS libraries switch to other kernels for very few rows (MKL below 16), whose rounding
    # differs in the last bit; a short last block is computed as the tail of a longer one so
    # that every row's scores match a one-shot (Q, G) product such as FastReID's build_dist.
    min_rows = min(chunk_size, MIN_BLOCK_ROWS, num_query)

    def compute(i: int, start: int, stop: int):
        first = min(start, stop - min_rows)
        block = buffers[i % len(buffers)][:stop - first]
        scores = scorer.scores(query[first:stop], gallery, out=block)[start - first:]
        if score_hook is not None:
            scores = score_hook(scores, QueryBlock(start, stop, *labels))
        return scores

    def finish(start: int, stop: int, scores) -> None:
        result = rank_positives(scores, *matches.chunk(start, stop))
        out.ap[start:stop], out.first_rank[start:stop], out.inp[start:stop] = result

    if overlap:
        # BLAS and numpy's sort release the GIL: rank block i while block i+1 is multiplied.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for i, (start, stop) in enumerate(blocks):
                scores = compute(i, start, stop)
                if pending is not None:
                    pending.result()
                pending = pool.submit(finish, start, stop, scores)
            pending.result()
    else:
        for i, (start, stop) in enumerate(blocks):
            finish(start, stop, compute(i, start, stop))
    return out


def summarize(ranks: QueryRanks, matches: MatchIndex,
              cmc_ranks: Tuple[int, ...] = CMC_RANKS) -> RankMetrics:
    """Average per-query ranks over the queries that have a positive, in percent."""
    valid = matches.valid
    if not valid.any():
        raise ValueError("no query has a valid gallery match (same identity, other camera)")
    first = ranks.first_rank[valid]
    return RankMetrics(
        mAP=float(np.mean(ranks.ap[valid]) * 100),
        cmc={k: float(np.mean(first <= k) * 100) for k in cmc_ranks},
        mINP=float(np.mean(ranks.inp[valid]) * 100),
        num_valid=int(valid.sum()), num_skipped=int((~valid).sum()), per_query=ranks)


def evaluate_ranking(query_feats, gallery_feats, q_pids, q_camids, g_pids, g_camids, *,
                     metric: str = "cosine", chunk_size: int = 1024, backend: str = "auto",
                     device: Optional[str] = None,
                     score_hook: Optional[ScoreHook] = None) -> RankMetrics:
    """FastReID's mAP / CMC / mINP (%) of query features (Q, D) against gallery features (G, D).

    ``q_pids``/``q_camids`` (Q,) and ``g_pids``/``g_camids`` (G,) are integer ids; features
    may be numpy arrays or torch tensors.
    """
    matches = MatchIndex.build(q_pids, q_camids, g_pids, g_camids)
    if matches.num_valid == 0:
        raise ValueError("no query has a valid gallery match (same identity, other camera)")
    scorer = make_scorer(backend, metric, device)
    query = scorer.prepare(query_feats, "query", "query features")
    gallery = scorer.prepare(gallery_feats, "gallery", "gallery features")
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query features have dimension {query.shape[1]} but gallery "
                         f"features {gallery.shape[1]}")
    ranks = rank_queries(scorer, query, gallery, matches, chunk_size, score_hook)
    return summarize(ranks, matches)
