"""The handful of array operations the ranking needs, for numpy or for torch on any device.

The CPU ranking runs on numpy (its AVX-512 sort is several times faster than torch's); score
blocks that live on a GPU are ranked there with torch, so they never cross the bus. One
implementation of the ranking drives both through this class.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ArrayOps"]


class ArrayOps:
    """The array operations of the ranking, on numpy arrays or on torch tensors of a device."""

    def __init__(self, torch_device=None):
        self.torch = None
        if torch_device is not None:
            import torch

            self.torch, self.device = torch, torch_device

    def index(self, a: np.ndarray):
        return a if self.torch is None else self.torch.from_numpy(a).to(self.device)

    def numpy(self, a) -> np.ndarray:
        return a if self.torch is None else a.cpu().numpy()

    def arange(self, n: int):
        return np.arange(n) if self.torch is None else self.torch.arange(n, device=self.device)

    def bincount(self, x, n: int, weights=None):
        if self.torch is None:
            return np.bincount(x, weights=weights, minlength=n)
        return self.torch.bincount(x, weights=weights, minlength=n)

    def cumsum(self, x):
        return np.cumsum(x) if self.torch is None else self.torch.cumsum(x, 0)

    def flatnonzero(self, x):
        return np.flatnonzero(x) if self.torch is None else self.torch.nonzero(x).squeeze(1)

    def searchsorted(self, sorted_keys, keys, side: str):
        """Number of ``sorted_keys`` below (side "left") or not above ("right") each key."""
        if self.torch is None:
            return np.searchsorted(sorted_keys, keys, side=side)
        return self.torch.searchsorted(sorted_keys, keys, side=side)

    def count(self, mask) -> int:
        return np.count_nonzero(mask) if self.torch is None else int(mask.sum())

    def sort_(self, x):
        if self.torch is None:
            x.sort()
            return x
        return self.torch.sort(x).values

    def count_rows(self, mask):
        return np.count_nonzero(mask, axis=1) if self.torch is None else mask.sum(1)

    def row_min(self, values, rows, starts, counts, n: int):
        """Per-row minimum of ``values`` grouped by ascending ``rows``; +inf for empty rows."""
        if self.torch is None:
            out = np.full(n, np.inf, dtype=np.float32)
            has = counts > 0
            if has.any():
                out[has] = np.minimum.reduceat(values, starts[has])
            return out
        out = self.torch.full((n,), float("inf"), device=self.device)
        return out.scatter_reduce_(0, rows, values, reduce="amin")

    def keys(self, values, rows):
        """int64 keys ordered by (row, value) for float32 ``values`` (no NaN)."""
        values = values + 0.0  # -0.0 -> +0.0, so equal scores get equal keys
        if self.torch is None:
            k = values.view(np.int32).astype(np.int64)
        else:
            k = values.view(self.torch.int32).to(self.torch.int64)
        # IEEE-754 bits -> integers in the same order as the floats: flip negatives' magnitude.
        k ^= (k >> 31) & 0x7FFFFFFF
        k += 1 << 31
        if self.torch is None:
            k |= rows.astype(np.int64) << 32
        else:
            k |= rows.to(self.torch.int64) << 32
        return k

    def f64(self, x):
        return x.astype(np.float64) if self.torch is None else x.double()
