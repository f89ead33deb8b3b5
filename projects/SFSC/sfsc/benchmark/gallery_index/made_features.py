"""Made distractor features: more gallery rows than there was time to render and extract,
built from the real distractor features so that they keep their structure.

Each made identity is a mixture of two real distractor identities: its centre is
``a * m_i + (1 - a) * m_j`` (``m``: the mean unit feature of a real identity, ``a`` uniform in
[0.25, 0.75]) rescaled to the mixture of the two norms. Each of its images is that centre plus
the residual (feature minus its identity's mean) of a randomly drawn real image, L2-normalised,
with that image's camera; the number of images per made identity is drawn from the real
identities' counts. So made features cluster by identity as real ones do, with real
within-identity (pose, camera) variation, and none belongs to a query's identity.
"""
from __future__ import annotations

import logging
from typing import Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["MADE_PID_BASE", "made_distractors"]

#: Made identities are numbered from here, above real distractors' numbers.
MADE_PID_BASE = 1_000_000_000
_BLOCK = 4096  # made identities per step


def made_distractors(real: np.ndarray, real_pids: np.ndarray, real_camids: np.ndarray,
                     count: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feats (count, D) float32 unit rows, pids (count,), camids (count,)) made from real
    unit features (n, D) with identities and cameras (n,)."""
    real = real / np.linalg.norm(real, axis=1, keepdims=True)
    ids, inverse, sizes = np.unique(real_pids, return_inverse=True, return_counts=True)
    if len(ids) < 2:
        raise ValueError("made distractors mix two real identities: at least two are needed")
    means = np.zeros((len(ids), real.shape[1]), np.float64)
    np.add.at(means, inverse, real)
    means /= sizes[:, None]
    norms = np.linalg.norm(means, axis=1)
    residuals = (real - means[inverse]).astype(np.float32)
    rng = np.random.default_rng(seed)
    feats = np.empty((count, real.shape[1]), np.float32)
    pids = np.empty(count, np.int64)
    camids = np.empty(count, np.int64)
    filled, made = 0, 0
    while filled < count:
        a = rng.integers(len(ids), size=_BLOCK)
        b = (a + rng.integers(1, len(ids), size=_BLOCK)) % len(ids)  # another identity
        alpha = rng.uniform(0.25, 0.75, size=(_BLOCK, 1))
        centres = alpha * means[a] + (1 - alpha) * means[b]
        target = alpha[:, 0] * norms[a] + (1 - alpha[:, 0]) * norms[b]
        centres *= (target / np.maximum(np.linalg.norm(centres, axis=1), 1e-12))[:, None]
        per_id = sizes[rng.integers(len(ids), size=_BLOCK)]
        owner = np.repeat(np.arange(_BLOCK), per_id)[:count - filled]
        borrowed = rng.integers(len(real), size=len(owner))
        block = centres[owner].astype(np.float32) + residuals[borrowed]
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        stop = filled + len(owner)
        feats[filled:stop] = block
        pids[filled:stop] = MADE_PID_BASE + made + owner
        camids[filled:stop] = real_camids[borrowed]
        filled, made = stop, made + _BLOCK
    logger.info(f"Made {count} distractor features of {len(np.unique(pids))} identities from "
                f"{len(real)} real ones ({len(ids)} identities)")
    return feats, pids, camids
