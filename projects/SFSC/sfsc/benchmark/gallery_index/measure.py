"""What one index's lists cost and lose against exact search: recall, mAP / Rank-1, speed,
memory.

``recall@k`` is the share of the exact top k (by score, over the whole gallery, identities
ignored) that the index's top k holds, averaged over queries. mAP and Rank-1 follow the
evaluation's protocol (junk dropped) on the top ``depth`` items of a list, positives past it
counting in AP's denominator, for the index's lists and for the exact ones alike.
"""
from __future__ import annotations

import time
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from ...deploy.index.faiss_ops import ivf_of, to_scores
from ...evaluation.list_metrics import drop_junk, list_metrics
from ...evaluation.matches import MatchIndex

__all__ = ["RECALL_AT", "Reference", "compare", "index_bytes", "list_imbalance", "list_summary",
           "make_reference", "timed_search"]

RECALL_AT = (1, 10, 100)


def index_bytes(index) -> int:
    """What ``index`` holds (vectors or codes, ids, quantiser, graph), in bytes: the size of
    its serialisation, counted as it streams (a process's resident memory would also count
    what the allocator keeps of earlier indexes)."""
    import faiss

    total = [0]

    def count(chunk) -> None:
        total[0] += len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total[0]


def list_imbalance(index) -> Optional[float]:
    """faiss's imbalance factor of an IVF index's lists (1: equal sizes), else None."""
    ivf = ivf_of(index)
    return float(ivf.invlists.imbalance_factor()) if ivf is not None else None


def timed_search(index, queries: np.ndarray, depth: int, min_seconds: float = 0.5,
                 max_runs: int = 7) -> Tuple[np.ndarray, np.ndarray, float]:
    """(distances, rows (Q, depth), seconds of one search of every query): the median of
    repeated runs until ``min_seconds`` have passed (one run if it takes that long)."""
    times = []
    while True:
        start = time.perf_counter()
        distances, rows = index.search(queries, depth)
        times.append(time.perf_counter() - start)
        if sum(times) >= min_seconds or len(times) >= max_runs:
            return distances, rows, float(np.median(times))


class Reference(NamedTuple):
    """Exact search of one query set over one gallery."""

    rows: np.ndarray  # (Q, depth + junk) gallery rows, best first, identities ignored
    seconds: float  # one search of every query
    matches: MatchIndex
    metrics: Dict[str, float]  # mAP, R1 of the exact lists' top depth


def list_summary(rows: np.ndarray, scores: np.ndarray, matches: MatchIndex, depth: int
                 ) -> Dict[str, float]:
    """mAP and Rank-1 (%) of the junk-free top ``depth`` of lists (Q, >= depth + junk)."""
    rows, _ = drop_junk(rows, scores, matches)
    summary = list_metrics(rows[:, :depth], matches).summary()
    return {"mAP": summary["mAP"], "R1": summary["R1"]}


def make_reference(flat, queries: np.ndarray, matches: MatchIndex, depth: int,
                   metric: str = "cosine") -> Reference:
    """Exact lists of ``queries`` from the flat index ``flat``, timed."""
    extra = int(matches.junk_per_query().max(initial=0))
    distances, rows, seconds = timed_search(flat, queries, depth + extra)
    return Reference(rows, seconds, matches,
                     list_summary(rows, to_scores(distances, metric), matches, depth))


def _recall(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    hits = [len(np.intersect1d(a[:k], e[:k])) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k)


def compare(index, queries: np.ndarray, reference: Reference, depth: int,
            metric: str = "cosine") -> Dict[str, float]:
    """Recall@1/10/100 against ``reference``, mAP / Rank-1 of both, and queries per second of
    both, for ``index`` searched with ``queries`` as it is set up."""
    distances, rows, seconds = timed_search(index, queries, reference.rows.shape[1])
    row = {f"recall@{k}": _recall(rows, reference.rows, k) for k in RECALL_AT}
    approx = list_summary(rows, to_scores(distances, metric), reference.matches, depth)
    row.update({"mAP": approx["mAP"], "R1": approx["R1"],
                "mAP_exact": reference.metrics["mAP"], "R1_exact": reference.metrics["R1"],
                "qps": len(queries) / seconds, "qps_exact": len(queries) / reference.seconds})
    row["speedup"] = row["qps"] / row["qps_exact"]
    return row
