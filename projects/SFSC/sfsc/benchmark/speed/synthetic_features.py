"""ReID-like synthetic features of several models (widths), for timing the evaluator.

Identities are seen by several cameras, with per-identity centres, per-camera shifts, per-image
noise and distractors; each model is a different noisy linear view of the same images, so that
the cells of a matrix differ and mAP stays well below 100.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["generate", "load_features"]


def generate(folder: str, num_query: int, num_gallery: int, num_ids: int, num_cams: int,
             num_distractors: int, dim: int, widths, seed: int,
             unmatched_fraction: float) -> dict:
    """Write ids.npz and q_<i>.npy / g_<i>.npy (float32) per model to ``folder``."""
    rng = np.random.default_rng(seed)
    # Queries: identities 1..num_ids, each seen by distinct cameras where possible.
    q_pids = np.sort(np.resize(rng.permutation(num_ids) + 1, num_query))
    q_cams = np.empty(num_query, np.int64)
    for pid in np.unique(q_pids):
        at = np.flatnonzero(q_pids == pid)
        q_cams[at] = np.resize(rng.permutation(num_cams), len(at))
    # Gallery: every identity under several cameras, plus distractors (pid 0, as in Market).
    labelled = num_gallery - num_distractors
    g_pids = np.concatenate([np.resize(rng.permutation(num_ids) + 1, labelled),
                             np.zeros(num_distractors, np.int64)])
    g_cams = rng.integers(0, num_cams, num_gallery)
    # A few query identities never appear in the gallery: FastReID skips those queries.
    unmatched = rng.choice(num_ids, int(round(unmatched_fraction * num_ids)), replace=False) + 1
    g_pids[np.isin(g_pids, unmatched)] = 0
    # Each distractor (including the images of those identities) gets a look of its own.
    others = int((g_pids == 0).sum())
    centres = rng.standard_normal((num_ids + 1 + others, dim), dtype=np.float32)
    cam_shift = 0.7 * rng.standard_normal((num_cams, dim), dtype=np.float32)
    g_keys = g_pids.copy()
    g_keys[g_pids == 0] = num_ids + 1 + np.arange(others)

    def images(keys, cams):
        x = centres[keys] + cam_shift[cams]
        x += 1.4 * rng.standard_normal(x.shape, dtype=np.float32)
        return x

    xq, xg = images(q_pids, q_cams), images(g_keys, g_cams)
    for i, w in enumerate(widths):
        narrow = 1.0 - float(w)
        view = np.eye(dim, dtype=np.float32) + (0.5 * narrow + 0.2) * rng.standard_normal(
            (dim, dim), dtype=np.float32) / np.sqrt(dim)
        for name, x in (("q", xq), ("g", xg)):
            noisy = x + 0.8 * (0.5 + narrow) * rng.standard_normal(x.shape, dtype=np.float32)
            np.save(os.path.join(folder, f"{name}_{i}.npy"), (noisy @ view).astype(np.float32))
    np.savez(os.path.join(folder, "ids.npz"), q_pids=q_pids, q_camids=q_cams, g_pids=g_pids,
             g_camids=g_cams, widths=np.asarray(widths, np.float64))
    return {"queries_without_match": int(np.isin(q_pids, unmatched).sum())}


def load_features(folder: str):
    """What :func:`generate` wrote: widths, [(query, gallery) feats], q_pids, q_camids, g_pids,
    g_camids."""
    ids = np.load(os.path.join(folder, "ids.npz"))
    widths = [float(w) for w in ids["widths"]]
    feats = [(np.load(os.path.join(folder, f"q_{i}.npy")),
              np.load(os.path.join(folder, f"g_{i}.npy"))) for i in range(len(widths))]
    return widths, feats, ids["q_pids"], ids["q_camids"], ids["g_pids"], ids["g_camids"]
