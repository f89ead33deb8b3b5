"""Query-gallery similarity, one block of queries at a time, on the CPU or a GPU.

Scores are "higher is more similar" for both metrics, so the ranking never branches on the
metric: ``cosine`` scores are inner products of L2-normalised features (FastReID's
``TEST.METRIC cosine``), ``euclidean`` scores are minus squared distances.

Backends (``TEST.COMPAT.BACKEND``):

* ``torch``: FastReID's own arithmetic (``F.normalize``, ``torch.mm``; ``|q|^2 + |g|^2`` then
  ``addmm`` for Euclidean), block by block, on ``device``. On the CPU each block is
  bit-identical to the matching rows of ``build_dist``'s matrix, so metrics differ from
  FastReID's only where its argsort orders tied distances arbitrarily. On CUDA the ranking
  also runs on the GPU and only per-query results leave the device.
* ``faiss``: faiss's exact flat inner product. On the CPU faiss computes it as one BLAS
  ``sgemm`` (``faiss.pairwise_distances`` is ``xq @ xb.T`` there), issued here into a reused
  buffer; Euclidean scores are the inner products of ``[q, 1]`` and ``[2g, -|g|^2]``, i.e.
  ``2 q.g - |g|^2``, which orders a query's gallery as the squared distance does. With
  faiss-gpu (``faiss.get_num_gpus() > 0``) blocks come from ``faiss.pairwise_distance_gpu``.
* ``auto``: torch on CUDA if available, else faiss-gpu if present, else torch on the CPU
  (as fast as numpy's BLAS here, and bit-compatible with FastReID).

GPU paths cannot be exercised on CPU-only machines; they run the same code as the CPU paths,
with device placement as the only difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BACKENDS", "METRICS", "Features", "Scorer", "make_scorer", "as_feature_array",
           "normalize"]

BACKENDS = ("auto", "faiss", "torch")
METRICS = ("cosine", "euclidean")


def as_feature_array(feats: Any, name: str = "features") -> np.ndarray:
    """``feats`` (N, D) (numpy array or torch tensor) as C-contiguous float32 numpy.

    Raises ``ValueError`` (naming ``name``) for a wrong rank, an empty array or non-finite values.
    """
    if hasattr(feats, "detach"):  # torch tensor, possibly on a GPU
        feats = feats.detach().float().cpu().numpy()
    arr = np.ascontiguousarray(feats, dtype=np.float32)
    if not arr.flags.writeable:  # e.g. a read-only memmap: torch.from_numpy wants writable
        arr = arr.copy()
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name} has NaN or inf values in {len(bad)} of {len(arr)} rows "
                         f"(first: row {bad[0]})")
    return arr


def normalize(feats: np.ndarray) -> np.ndarray:
    """Rows (N, D) float32 scaled to unit L2 norm exactly as FastReID's ``F.normalize``."""
    return F.normalize(torch.from_numpy(feats), p=2, dim=1).numpy()


@dataclass(frozen=True)
class Features:
    """One model's prepared features: ``data`` (N, D') on the scorer's device, and for torch's
    Euclidean scores the squared norms ``sqnorm`` (N,). Slicing selects rows."""

    data: Any
    sqnorm: Any = None

    @property
    def shape(self):
        return self.data.shape

    def __getitem__(self, rows: slice) -> Features:
        return Features(self.data[rows], None if self.sqnorm is None else self.sqnorm[rows])


class Scorer:
    """Computes score blocks ``(c, G)`` float32 for query rows against a whole gallery.

    ``array_api`` is "numpy" or "torch": the type of the blocks. ``overlap`` says whether
    ranking one block on the host may run while the next block is computed.
    """

    def __init__(self, name: str, metric: str, device: str = "cpu"):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.name, self.metric, self.device = name, metric, device
        self.array_api = "torch" if name == "torch" else "numpy"
        # A CUDA block is ranked on the GPU, in stream order: nothing to overlap on the host.
        self.overlap = not (name == "torch" and device != "cpu")
        self._gpu_res = None

    def __repr__(self) -> str:
        return f"Scorer({self.name}, {self.metric}, {self.device})"

    def prepare(self, feats: Any, role: str, name: str = "features") -> Features:
        """Validated features (N, D) of one model, ready for ``scores``; ``role`` is "query"
        or "gallery"."""
        arr = as_feature_array(feats, name)
        if self.array_api == "torch":
            data = torch.from_numpy(arr).to(self.device)
            if self.metric == "cosine":
                return Features(F.normalize(data, p=2, dim=1))
            return Features(data, torch.pow(data, 2).sum(dim=1))
        if self.metric == "cosine":
            return Features(normalize(arr))
        out = np.empty((arr.shape[0], arr.shape[1] + 1), dtype=np.float32)
        if role == "query":
            out[:, :-1], out[:, -1] = arr, 1.0
        else:
            out[:, :-1], out[:, -1] = 2.0 * arr, -np.einsum("ij,ij->i", arr, arr, dtype=np.float64)
        return Features(out)

    def empty(self, rows: int, cols: int):
        """An uninitialised (rows, cols) float32 score buffer."""
        if self.array_api == "torch":
            return torch.empty((rows, cols), dtype=torch.float32, device=self.device)
        return np.empty((rows, cols), dtype=np.float32)

    def scores(self, query: Features, gallery: Features, out=None):
        """Scores (c, G) float32 of prepared query rows (c, D') against the gallery (G, D')."""
        if out is None:
            out = self.empty(query.shape[0], gallery.shape[0])
        if self.array_api == "torch":
            if self.metric == "cosine":
                return torch.mm(query.data, gallery.data.T, out=out)
            # compute_euclidean_distance's operations, in its order, then negated.
            torch.add(query.sqnorm[:, None], gallery.sqnorm[None, :], out=out)
            return out.addmm_(query.data, gallery.data.T, beta=1, alpha=-2).neg_()
        if self.device != "cpu":  # faiss-gpu; not testable on CPU-only machines
            import faiss

            if self._gpu_res is None:
                self._gpu_res = faiss.StandardGpuResources()
            return faiss.pairwise_distance_gpu(self._gpu_res, query.data, gallery.data, D=out,
                                               metric=faiss.METRIC_INNER_PRODUCT)
        return np.matmul(query.data, gallery.data.T, out=out)


def faiss_num_gpus() -> int:
    """GPUs faiss can use (0 with faiss-cpu or when faiss is not importable)."""
    try:
        import faiss
    except ImportError:
        return 0
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def make_scorer(backend: str = "auto", metric: str = "cosine",
                device: Optional[str] = None) -> Scorer:
    """The scorer for ``backend`` (auto | faiss | torch) and ``metric`` (cosine | euclidean).

    ``device`` (torch only, e.g. "cuda:1" or "cpu") defaults to CUDA when available.
    """
    backend = str(backend).lower()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if backend == "auto":
        gpu_faiss = device is None and not torch.cuda.is_available() and faiss_num_gpus() > 0
        backend = "faiss" if gpu_faiss else "torch"
    if backend == "torch":
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return Scorer("torch", metric, str(device))
    return Scorer("faiss", metric, "gpu" if faiss_num_gpus() > 0 else "cpu")
