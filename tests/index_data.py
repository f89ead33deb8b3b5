"""Saved features for the gallery-index tests, and the brute-force search they are checked by."""
from __future__ import annotations

import numpy as np


def clustered(n: int, dim: int, pids: np.ndarray, rng: np.random.Generator,
              spread: float = 0.6) -> np.ndarray:
    """Features (n, dim) float32 around one random centre per identity, unnormalised."""
    centres = np.random.default_rng(12345).standard_normal((int(pids.max()) + 1, dim))
    return (centres[pids] + spread * rng.standard_normal((n, dim))).astype(np.float32)


def write_split(path, num: int, dim: int, seed: int, num_ids: int = 60, paths=None,
                **extra) -> dict:
    """Write a saved-features .npz of ``num`` images; return its arrays."""
    rng = np.random.default_rng(seed)
    pids = rng.integers(1, num_ids + 1, num)
    camids = rng.integers(0, 4, num)
    arrays = dict(feats=clustered(num, dim, pids, rng), pids=pids, camids=camids, **extra)
    if paths is not None:
        arrays["paths"] = np.asarray(paths)
    np.savez(path, **arrays)
    return arrays


def brute_force(query: dict, gallery: dict, k: int, metric: str = "cosine",
                drop_junk: bool = True):
    """(rows (Q, k), scores (Q, k)) of an exhaustive numpy search; junk (same identity and
    camera) left out when ``drop_junk``."""
    q = query["feats"].astype(np.float64)
    g = gallery["feats"].astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        scores = q @ g.T
    else:
        scores = -((q[:, None, :] - g[None, :, :]) ** 2).sum(axis=2)
    if drop_junk:
        junk = (query["pids"][:, None] == gallery["pids"][None, :]) & \
               (query["camids"][:, None] == gallery["camids"][None, :])
        scores = np.where(junk, -np.inf, scores)
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(scores, rows, axis=1)
