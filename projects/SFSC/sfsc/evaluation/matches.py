"""Which gallery items are positives and which are junk for each query (FastReID's protocol).

A gallery item with the query's identity is a *positive* when it comes from another camera and
*junk* (removed from the ranking) when it comes from the query's camera; every other item is a
negative, distractors included. This depends only on identities and cameras, so it is built
once and shared by every cell of a compatibility matrix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

__all__ = ["MatchIndex", "as_id_array"]


def as_id_array(values, name: str) -> np.ndarray:
    """``values`` as a 1-D int64 array; raises ``ValueError`` naming ``name`` otherwise."""
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class MatchIndex:
    """Same-identity gallery items of every query, in CSR form.

    ``cols[ptr[i]:ptr[i+1]]`` are the gallery indices sharing query ``i``'s identity and
    ``is_pos`` tells which of them are positives (other camera) rather than junk (same camera).
    ``num_pos`` (Q,) counts positives; queries with none are skipped by every metric, as in
    FastReID's ``eval_market1501``.
    """

    num_query: int
    num_gallery: int
    ptr: np.ndarray  # (Q+1,) int64
    cols: np.ndarray  # (P,) int64 gallery indices
    is_pos: np.ndarray  # (P,) bool
    num_pos: np.ndarray  # (Q,) int64
    _chunks: Dict[Tuple[int, int], Tuple[np.ndarray, ...]] = field(
        default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, q_pids, q_camids, g_pids, g_camids) -> MatchIndex:
        """Index for query ids/cameras (Q,) against gallery ids/cameras (G,)."""
        q_pids, q_camids = as_id_array(q_pids, "q_pids"), as_id_array(q_camids, "q_camids")
        g_pids, g_camids = as_id_array(g_pids, "g_pids"), as_id_array(g_camids, "g_camids")
        if len(q_pids) != len(q_camids):
            raise ValueError(f"q_pids has {len(q_pids)} entries but q_camids {len(q_camids)}")
        if len(g_pids) != len(g_camids):
            raise ValueError(f"g_pids has {len(g_pids)} entries but g_camids {len(g_camids)}")
        order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[order]
        lo = np.searchsorted(sorted_pids, q_pids, side="left")
        counts = np.searchsorted(sorted_pids, q_pids, side="right") - lo
        ptr = np.zeros(len(q_pids) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        rows = np.repeat(np.arange(len(q_pids)), counts)
        cols = order[np.arange(ptr[-1]) - ptr[rows] + lo[rows]]
        is_pos = g_camids[cols] != q_camids[rows]
        num_pos = np.bincount(rows[is_pos], minlength=len(q_pids)).astype(np.int64)
        return cls(len(q_pids), len(g_pids), ptr, cols, is_pos, num_pos)

    @property
    def valid(self) -> np.ndarray:
        """(Q,) bool: queries with at least one positive (the ones FastReID evaluates)."""
        return self.num_pos > 0

    @property
    def num_valid(self) -> int:
        return int(np.count_nonzero(self.num_pos))

    @property
    def num_skipped(self) -> int:
        return self.num_query - self.num_valid

    def chunk(self, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same-identity pairs of queries ``start:stop``: (local rows, cols, is_pos), each (P_c,).

        Rows are grouped in ascending order, so each query's positives are contiguous.
        """
        return self._chunk(int(start), int(stop))

    def _chunk(self, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Every cell of a matrix walks the same chunks: build each one once.
        key = (start, stop)
        if key not in self._chunks:
            a, b = self.ptr[start], self.ptr[stop]
            rows = np.repeat(np.arange(stop - start), np.diff(self.ptr[start:stop + 1]))
            self._chunks[key] = (rows, self.cols[a:b], self.is_pos[a:b])
        return self._chunks[key]

    def junk_per_query(self) -> np.ndarray:
        """(Q,) int64: junk items (same identity and camera) of each query."""
        return np.diff(self.ptr) - self.num_pos
