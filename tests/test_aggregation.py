"""PCGrad in Gram space: no conflict -> sum; conflicts removed; equal to Algorithm 1 as a loop."""
import numpy as np
import pytest
import torch

from sfsc.engine.aggregation import PCGradAggregation, SumAggregation


def pcgrad_loop(grads, orders, eps=1e-12):
    """Algorithm 1 on the full vectors: project each g_a against the original g_b, then sum."""
    projected = []
    for a in range(grads.shape[0]):
        g_a = grads[a].clone()
        for b in orders[a]:
            dot = torch.dot(g_a, grads[b])
            if dot < 0:
                g_a = g_a - dot / (grads[b].norm() ** 2 + eps) * grads[b]
        projected.append(g_a)
    return torch.stack(projected).sum(0)


def test_sum():
    grads = torch.randn(4, 100)
    assert torch.allclose(SumAggregation()(grads), grads.sum(0), atol=1e-5)


def test_no_conflict_equals_sum():
    grads = torch.rand(4, 50)  # non-negative entries: every dot product is positive
    assert torch.allclose(PCGradAggregation()(grads), grads.sum(0), atol=1e-5)


def test_two_conflicting_gradients_stop_conflicting():
    g1 = torch.tensor([1.0, 0.0])
    g2 = torch.tensor([-1.0, 1.0])
    update = PCGradAggregation()(torch.stack([g1, g2]))
    assert torch.dot(g1, g2) < 0
    assert torch.dot(update, g1) >= -1e-6 and torch.dot(update, g2) >= -1e-6
    assert torch.allclose(update, torch.tensor([0.5, 1.5]))  # both projections, summed


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_loop(seed):
    torch.manual_seed(seed)
    grads = torch.randn(5, 300, dtype=torch.float64)
    agg = PCGradAggregation(seed=seed)
    rng = np.random.default_rng(seed)  # the same draws, in the same order, as the aggregation
    orders = [rng.permutation([b for b in range(5) if b != a]) for a in range(5)]
    assert torch.allclose(agg(grads), pcgrad_loop(grads, orders), atol=1e-9)


def test_order_is_random_per_step_and_resumable():
    torch.manual_seed(0)
    grads = torch.randn(4, 64, dtype=torch.float64)
    agg = PCGradAggregation(seed=3)
    state = agg.state_dict()
    first = [agg(grads) for _ in range(3)]
    agg.load_state_dict(state)
    again = [agg(grads) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
