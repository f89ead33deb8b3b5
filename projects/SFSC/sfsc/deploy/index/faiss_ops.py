"""faiss indexes from factory strings: the metric, training on a sample, batched adds, search
parameters.

faiss is imported inside the functions: some faiss wheels clash with torch's OpenMP when loaded
first, and only the index tools need it.
"""
from __future__ import annotations

import logging
import time
from typing import Optional, Tuple

import numpy as np

from ...evaluation.similarity import METRICS, as_feature_array, normalize
from .errors import IndexInputError
from .faiss_import import import_faiss

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "add_in_batches", "faiss_metric", "ivf_of", "new_index", "prepare",
           "set_search_parameters", "to_scores", "train_on_sample"]


def faiss_metric(metric: str) -> int:
    """faiss's metric constant for the project's ``cosine`` (inner product of unit vectors) or
    ``euclidean`` (squared L2)."""
    faiss = import_faiss()
    if metric not in METRICS:
        raise IndexInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.")
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def prepare(feats, metric: str, name: str = "features") -> np.ndarray:
    """Features (N, D) as faiss reads them: float32, C-contiguous, L2-normalised for cosine as
    the evaluation normalises them."""
    try:
        arr = as_feature_array(feats, name)
    except ValueError as exc:
        raise IndexInputError(str(exc)) from None
    return normalize(arr) if metric == "cosine" else arr


def to_scores(distances: np.ndarray, metric: str) -> np.ndarray:
    """faiss's distances as the project's scores (higher is more similar): cosine similarity,
    or minus the squared Euclidean distance."""
    return distances if metric == "cosine" else -distances


def new_index(factory: str, dim: int, metric: str):
    """An empty index of ``factory`` (any faiss index_factory string) for ``dim``-d vectors."""
    faiss = import_faiss()
    try:
        index = faiss.index_factory(int(dim), factory, faiss_metric(metric))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise IndexInputError(f"faiss cannot build an index from {factory!r} for {dim}-d "
                              f"vectors ({first}). Pass a faiss index_factory string such as "
                              f"'Flat', 'IVF1024,Flat', 'IVF1024,PQ64' or 'HNSW32'.") from None
    for part in (ivf_of(index), faiss.downcast_index(index)):
        if part is not None and hasattr(part, "do_polysemous_training"):
            # The factory turns it on for PQ and IVF-PQ, yet it only serves Hamming
            # pre-filtering (polysemous_ht), which search leaves off; on 64 sub-quantisers
            # it costs minutes.
            part.do_polysemous_training = False
    return index


def ivf_of(index):
    """The IndexIVF inside ``index`` (through pre-transforms, ID maps), or None."""
    faiss = import_faiss()
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
    # extract_index_ivf answers with the base class: attributes of the concrete kind
    # (IndexIVFPQ's do_polysemous_training) would be set on the Python proxy only
    return faiss.downcast_index(ivf)


def train_on_sample(index, feats: np.ndarray, sample_size: int, seed: int = 0
                    ) -> Tuple[int, float]:
    """Train ``index`` on at most ``sample_size`` rows of ``feats`` (N, D), drawn with ``seed``;
    (rows used, seconds). An index that needs no training is left alone: (0, 0.0)."""
    if index.is_trained:
        return 0, 0.0
    if sample_size < 1:
        raise IndexInputError(f"the training sample must hold at least 1 row, got {sample_size}.")
    n = len(feats)
    if n > sample_size:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))
        sample = feats[rows]
    else:
        sample = feats
    ivf = ivf_of(index)
    if ivf is not None and len(sample) < ivf.nlist:
        raise IndexInputError(f"{len(sample)} training vectors cannot place {ivf.nlist} IVF "
                              f"centroids: use fewer lists (e.g. IVF{max(1, len(sample) // 39)}) "
                              f"or a larger gallery / training sample.")
    logger.info(f"Training the index on {len(sample)} of {n} vectors ...")
    start = time.perf_counter()
    try:
        index.train(np.ascontiguousarray(sample))
    except RuntimeError as exc:
        raise IndexInputError(f"faiss could not train the index on {len(sample)} vectors: "
                              f"{str(exc).strip().splitlines()[-1]}") from None
    took = time.perf_counter() - start
    logger.info(f"Trained in {took:.1f} s")
    return len(sample), took


def add_in_batches(index, feats: np.ndarray, batch_size: int = 65536,
                   log_period: float = 5.0) -> float:
    """Add ``feats`` (N, D) to ``index`` in row order, logging progress and an ETA; seconds."""
    if batch_size < 1:
        raise IndexInputError(f"the batch size must be at least 1, got {batch_size}.")
    n = len(feats)
    start = last = time.perf_counter()
    for lo in range(0, n, batch_size):
        index.add(np.ascontiguousarray(feats[lo:lo + batch_size]))
        done, now = min(lo + batch_size, n), time.perf_counter()
        if now - last >= log_period or done == n:
            rate = done / max(now - start, 1e-9)
            logger.info(f"Added {done}/{n} vectors ({rate:.0f}/s), "
                        f"ETA {(n - done) / max(rate, 1e-9):.0f} s")
            last = now
    return time.perf_counter() - start


def set_search_parameters(index, nprobe: Optional[int] = None,
                          ef_search: Optional[int] = None) -> None:
    """Set IVF ``nprobe`` / HNSW ``efSearch`` (None: keep); IndexInputError where the index
    has no such parameter."""
    faiss = import_faiss()
    is_gpu = "Gpu" in type(index).__name__ or "Shards" in type(index).__name__
    space = faiss.GpuParameterSpace() if is_gpu and hasattr(faiss, "GpuParameterSpace") \
        else faiss.ParameterSpace()
    for name, value, kind in (("nprobe", nprobe, "IVF"), ("efSearch", ef_search, "HNSW")):
        if value is None:
            continue
        if value < 1:
            raise IndexInputError(f"{name} must be at least 1, got {value}.")
        try:
            space.set_index_parameter(index, name, int(value))
        except RuntimeError:
            raise IndexInputError(f"{name} applies to {kind} indexes; this index is a "
                                  f"{type(index).__name__} without one.") from None
