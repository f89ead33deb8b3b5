"""Where the task gradients conflict: per-layer Gram matrices and the measures logged from them.

A layer is a module owning parameters (a convolution, one width's BatchNorm, the classifier).
The Gram matrix of the task gradients is the sum of the layers' own Gram matrices
G_l G_lᵀ, so computing those and summing them costs the products the whole one costs. The
aggregation still projects over the whole model (SFSC's Algorithm 1; PrunNet projects per
layer); the layers only say where a conflict sits: a pair of tasks conflicts in layer l when
g_a,l · g_b,l < 0, among the layers both tasks' gradients reach (a width's own BatchNorms
are reached by that width's tasks only).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .aggregation import GRAM_CHUNK

__all__ = ["LayerGram", "conflict_scalars", "layer_conflict_shares", "pair_names",
           "task_pairs"]

# Parameters below this size (BatchNorm affine parameters, small convolutions) are gathered
# and reduced together, so a network's hundreds of them cost two kernels, not one product each.
SMALL_PARAM = 4096


def task_pairs(num_tasks: int) -> List[Tuple[int, int]]:
    """Every pair (a, b), a < b, in the order the pair names and measures follow."""
    return [(a, b) for a in range(num_tasks) for b in range(a + 1, num_tasks)]


def pair_names(task_names: Sequence[str]) -> List[str]:
    """``["ori", "compat@0.25", ...]`` -> ``["ori-0.25", ...]`` (tasks named by their width)."""
    short = [name.rsplit("@", 1)[-1] for name in task_names]
    return [f"{short[a]}-{short[b]}" for a, b in task_pairs(len(task_names))]


class LayerGram:
    """Task gradients (T, P) -> per-layer Gram matrices (L, T, T) float64; their sum is G Gᵀ.

    Args:
        spans: (start, end) columns of each parameter in the flat gradient.
        layers: the layer name of each parameter (parameters of one name are one layer).
    """

    def __init__(self, spans: Sequence[Tuple[int, int]], layers: Sequence[str],
                 device: torch.device, chunk: int = GRAM_CHUNK):
        if len(spans) != len(layers):
            raise ValueError(f"{len(spans)} parameter spans for {len(layers)} layer names")
        self.names: List[str] = list(dict.fromkeys(layers))
        index = {name: i for i, name in enumerate(self.names)}
        # Large parameters: column chunks, each a float64 product into its layer's matrix.
        self._chunks = [(start, min(start + chunk, end), index[name])
                        for (a, end), name in zip(spans, layers) if end - a >= SMALL_PARAM
                        for start in range(a, end, chunk)]
        small = [(a, end, index[name]) for (a, end), name in zip(spans, layers)
                 if end - a < SMALL_PARAM]
        columns = [c for a, end, _ in small for c in range(a, end)]
        owners = [layer for a, end, layer in small for _ in range(a, end)]
        self._small = [(torch.tensor(columns[i:i + chunk], device=device),
                        torch.tensor(owners[i:i + chunk], device=device))
                       for i in range(0, len(columns), chunk)]

    def __call__(self, grads: torch.Tensor) -> torch.Tensor:
        """grads (T, P) float32 -> (L, T, T) float64, accumulated in float64 (see gram_matrix)."""
        t = grads.shape[0]
        out = torch.zeros(len(self.names), t, t, dtype=torch.float64, device=grads.device)
        for start, end, layer in self._chunks:
            block = grads[:, start:end].double()
            out[layer].addmm_(block, block.t())
        if self._small:
            a, b = torch.triu_indices(t, t, device=grads.device)  # with the diagonal
            upper = torch.zeros(len(a), len(self.names), dtype=torch.float64,
                                device=grads.device)
            for columns, owners in self._small:
                # (T, n); on the CPU, index_select over the strided rows is ~100× slower
                block = grads[:, columns].double()
                upper.index_add_(1, owners, block[a] * block[b])  # per pair, summed per layer
            small = torch.zeros_like(out)
            small[:, a, b] = upper.t()
            small[:, b, a] = upper.t()
            out += small
        return out


def layer_conflict_shares(layer_grams: torch.Tensor) -> torch.Tensor:
    """(L, T, T) -> (pairs + 1,) float64: for each pair (task_pairs order), the share of the
    layers both tasks reach where they conflict; last, the share of layers reached by two or
    more tasks where some pair conflicts. NaN where no layer is shared. Stays on the device."""
    t = layer_grams.shape[-1]
    a, b = torch.triu_indices(t, t, 1, device=layer_grams.device)
    reached = layer_grams.diagonal(dim1=1, dim2=2) > 0  # (L, T)
    both = reached[:, a] & reached[:, b]  # (L, pairs)
    conflict = (layer_grams[:, a, b] < 0) & both
    per_pair = conflict.sum(0).double() / both.sum(0).double()
    any_pair = conflict.any(1).sum().double() / both.any(1).sum().double()
    return torch.cat([per_pair, any_pair[None]])


def conflict_scalars(gram: torch.Tensor, shares: Sequence[float], task_names: Sequence[str],
                     pair_totals: List[int], weights: Optional[Sequence[float]] = None
                     ) -> Dict[str, float]:
    """The step's logged conflict measures from its Gram matrix (T, T, on the host, unscaled)
    and :func:`layer_conflict_shares`; adds this step's conflicts to ``pair_totals`` in place.
    ``weights`` (T,): each task's coefficient in the update, logged beside its gradient norm.

    Names: ``grad_norm/<task>``, ``task_weight/<task>``, ``cos/<pair>``, ``conflicts`` (pairs
    this step), ``conflicts_cumulative/<pair>`` (since the first step), ``layer_conflict_share``
    and ``layer_conflict_share/<pair>``.
    """
    norms = gram.diagonal().clamp_min(0).sqrt().tolist()
    out = {f"grad_norm/{name}": n for name, n in zip(task_names, norms)}
    if weights is not None:
        out.update({f"task_weight/{name}": float(w) for name, w in zip(task_names, weights)})
    conflicts = 0
    for i, ((a, b), pair) in enumerate(zip(task_pairs(len(task_names)),
                                           pair_names(task_names))):
        dot = float(gram[a, b])
        conflicts += dot < 0
        pair_totals[i] += dot < 0
        denominator = norms[a] * norms[b]
        out[f"cos/{pair}"] = dot / denominator if denominator > 0 else math.nan
        out[f"conflicts_cumulative/{pair}"] = pair_totals[i]
        out[f"layer_conflict_share/{pair}"] = float(shares[i])
    out["conflicts"] = conflicts
    if len(task_names) > 1:  # one task: no pair, no share
        out["layer_conflict_share"] = float(shares[-1])
    return out
