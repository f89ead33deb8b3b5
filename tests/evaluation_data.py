"""Small ReID-like splits for the evaluation tests: identities under several cameras,
distractors, and queries without a valid gallery match."""
from typing import Dict

import numpy as np


def reid_split(seed: int = 0, num_query: int = 90, num_gallery: int = 700, num_ids: int = 30,
               num_cams: int = 4, dim: int = 16, noise: float = 1.2) -> Dict[str, np.ndarray]:
    """Features and ids: qf (Q, dim), gf (G, dim) float32; qp, qc (Q,), gp, gc (G,) int64.

    Gallery ids 0 are distractors. Query 0 has an identity absent from the gallery and query 1
    one seen in the gallery only under its own camera: both have no valid match.
    """
    rng = np.random.default_rng(seed)
    qp = rng.integers(1, num_ids + 1, num_query)
    qc = rng.integers(0, num_cams, num_query)
    gp = rng.integers(0, num_ids + 1, num_gallery)  # 0: distractors
    gc = rng.integers(0, num_cams, num_gallery)
    qp[0] = num_ids + 5
    qp[1] = num_ids + 6
    gp[:3], gc[:3] = num_ids + 6, qc[1]
    centres = rng.standard_normal((num_ids + 7, dim))
    scale = rng.uniform(0.5, 2.0, (num_query + num_gallery, 1))  # varied norms
    qf = (centres[qp] + noise * rng.standard_normal((num_query, dim))) * scale[:num_query]
    gf = (centres[gp] + noise * rng.standard_normal((num_gallery, dim))) * scale[num_query:]
    gf[gp == 0] = rng.standard_normal((int((gp == 0).sum()), dim))
    return dict(qf=qf.astype(np.float32), gf=gf.astype(np.float32), qp=qp, qc=qc, gp=gp, gc=gc)


def float64_distance(qf: np.ndarray, gf: np.ndarray, metric: str) -> np.ndarray:
    """FastReID's distance (Q, G) for ``metric``, computed in float64."""
    q, g = qf.astype(np.float64), gf.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        return 1 - q @ g.T
    return (q * q).sum(1)[:, None] + (g * g).sum(1)[None] - 2 * q @ g.T


def positive_ties(dist: np.ndarray, qp, qc, gp, gc) -> int:
    """How many (positive, kept item) pairs of a query have exactly the same distance: where
    FastReID's argsort, which orders ties arbitrarily, has no unique answer."""
    same = gp[None] == qp[:, None]
    junk = same & (gc[None] == qc[:, None])
    ties = 0
    for row, pos, keep in zip(dist, same & ~junk, ~junk):
        values, counts = np.unique(row[keep], return_counts=True)
        ties += int(counts[np.isin(values, row[pos])].sum() - pos.sum())
    return ties


def reference_ranks(dist: np.ndarray, qp, qc, gp, gc, positives_first: bool = False
                    ) -> np.ndarray:
    """Per valid query: AP, rank of the first positive and INP, (V, 3), written out with a
    lexsort: smaller distance first, and among equal distances the negatives first (the worst
    case) or, with ``positives_first``, the positives (the best case). Same identity and camera
    is junk; queries without a positive are left out."""
    out = []
    for q in range(len(qp)):
        kept = ~((gp == qp[q]) & (gc == qc[q]))
        match = gp[kept] == qp[q]
        if not match.any():
            continue
        order = np.lexsort((~match if positives_first else match, dist[q][kept]))
        ranks = np.flatnonzero(match[order]) + 1  # 1-based ranks of the positives
        out.append((np.mean(np.arange(1, len(ranks) + 1) / ranks), ranks[0],
                    len(ranks) / ranks[-1]))
    return np.array(out)


def reference_metrics(dist: np.ndarray, qp, qc, gp, gc, positives_first: bool = False
                      ) -> Dict[str, float]:
    """{mAP, R1, R5, R10, mINP} in percent from :func:`reference_ranks`."""
    ranks = reference_ranks(dist, qp, qc, gp, gc, positives_first)
    ap, first, inp = ranks.T
    return {"mAP": 100 * ap.mean(), "R1": 100 * np.mean(first <= 1),
            "R5": 100 * np.mean(first <= 5), "R10": 100 * np.mean(first <= 10),
            "mINP": 100 * inp.mean()}
