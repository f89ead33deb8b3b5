"""PCGrad in Gram space: no conflict -> sum; conflicts removed; equal to Algorithm 1 as a loop;
conflict signs of near-orthogonal gradients decided in float64; a fresh order every step."""
import itertools
import math

import numpy as np
import pytest
import torch

from sfsc.engine.aggregation import PCGradAggregation, SumAggregation, gram_matrix


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


# Three mutually conflicting gradients: each of the 8 combinations of visiting orders gives
# another update (checked below against the reference loop).
CONFLICTING = torch.tensor([[1.0, 0.0, 0.1], [-0.5, 0.866, 0.2], [-0.5, -0.866, 0.3]],
                           dtype=torch.float64)


def _all_order_results(grads):
    t = grads.shape[0]
    per_task = [list(itertools.permutations([b for b in range(t) if b != a])) for a in range(t)]
    return [pcgrad_loop(grads, orders) for orders in itertools.product(*per_task)]


def _distinct(updates):
    distinct = []
    for u in updates:
        if not any(torch.allclose(u, d, atol=1e-9) for d in distinct):
            distinct.append(u)
    return distinct


def test_order_is_drawn_afresh_every_step():
    possible = _all_order_results(CONFLICTING)
    assert len(_distinct(possible)) == 8  # the order matters for every task
    agg = PCGradAggregation(seed=3)
    state = agg.state_dict()
    steps = [agg(CONFLICTING) for _ in range(12)]
    for u in steps:  # every step is Algorithm 1 under some visiting order ...
        assert any(torch.allclose(u, r, atol=1e-9) for r in possible)
    assert len(_distinct(steps)) >= 4  # ... and not the same one each step
    # What a generator re-seeded (or an order fixed) every step would give: one result.
    reseeded = []
    for _ in range(12):
        agg.load_state_dict(state)
        reseeded.append(agg(CONFLICTING))
    assert len(_distinct(reseeded)) == 1


def test_order_is_resumable():
    torch.manual_seed(0)
    grads = torch.randn(4, 64, dtype=torch.float64)
    agg = PCGradAggregation(seed=3)
    state = agg.state_dict()
    first = [agg(grads) for _ in range(3)]
    agg.load_state_dict(state)
    again = [agg(grads) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def _near_orthogonal(t=5, p=2 ** 16, dot=1e-7):
    """float32 gradients (T, P + 2·pairs) whose exact pairwise dot products are ±``dot``
    (alternating), i.e. cosines of ~1e-12: far below float32's rounding of a 65k-term sum.

    Pair i gets two coordinates of its own: 1, 1 in row a; in row b the float32 nearest to
    -S (S: the exact dot so far) and the float32 nearest to what that rounding left plus ±dot.
    """
    g = torch.Generator().manual_seed(0)
    pairs = list(itertools.combinations(range(t), 2))
    x = torch.zeros(t, p + 2 * len(pairs))
    x[:, :p] = torch.randn(t, p, generator=g)
    for i, (a, b) in enumerate(pairs):
        coarse, fine = p + 2 * i, p + 2 * i + 1
        x[a, coarse] = x[a, fine] = 1.0
        rows = x.double().numpy()
        exact = math.fsum(rows[a] * rows[b])
        x[b, coarse] = float(np.float32(-exact))
        rest = -exact - float(x[b, coarse])
        x[b, fine] = float(np.float32(rest + (dot if i % 2 else -dot)))
    return x


def _exact_gram(x):
    rows = x.double().numpy()  # float32 products are exact in float64; fsum adds exactly
    t = rows.shape[0]
    return torch.tensor([[math.fsum(rows[a] * rows[b]) for b in range(t)] for a in range(t)],
                        dtype=torch.float64)


def _off_diagonal_signs(gram):
    return [bool(gram[a, b] < 0) for a, b in itertools.combinations(range(gram.shape[0]), 2)]


def test_float64_gram_keeps_the_conflict_sign_of_near_orthogonal_gradients():
    x = _near_orthogonal()
    exact = _exact_gram(x)
    assert _off_diagonal_signs(exact) == [i % 2 == 0 for i in range(10)]
    # The case is real: a float32 Gram matrix calls some of these pairs wrongly.
    assert _off_diagonal_signs((x @ x.t()).double()) != _off_diagonal_signs(exact)
    for chunk in (1000, 1 << 18):  # several chunks, and one (P = 2^16 + 20)
        gram = gram_matrix(x, chunk=chunk)
        assert gram.dtype == torch.float64
        assert _off_diagonal_signs(gram) == _off_diagonal_signs(exact), chunk
        assert torch.allclose(gram, exact, rtol=1e-12, atol=1e-11)


def _pcgrad_coefficients_loop(grads, orders, eps=1e-12):
    """Algorithm 1 on the full float64 vectors, tracking each projected g_a as a combination
    of the original gradients; -> (coefficients c with update cᵀG, projections made)."""
    t = grads.shape[0]
    coef = torch.eye(t, dtype=torch.float64)
    projections = []
    for a in range(t):
        g_a = grads[a].clone()
        for b in orders[a]:
            dot = torch.dot(g_a, grads[b])
            if dot < 0:
                step = dot / (grads[b].norm() ** 2 + eps)
                g_a = g_a - step * grads[b]
                coef[a, b] -= step
                projections.append((a, int(b)))
    return coef.sum(0), projections


@pytest.mark.parametrize("seed", range(3))
def test_pcgrad_decisions_on_near_orthogonal_gradients_match_a_float64_loop(seed):
    x = _near_orthogonal()
    rng = np.random.default_rng(seed)
    orders = [rng.permutation([b for b in range(5) if b != a]) for a in range(5)]
    reference, projections = _pcgrad_coefficients_loop(x.double(), orders)
    assert projections  # some of the ±1e-7 conflicts are projected away
    # Each projection against g_b raises c_b above 1 (by ~1e-12 here); none leaves it at 1.
    projected_against = {b for _, b in projections}
    assert [bool(c > 1) for c in reference] == [b in projected_against for b in range(5)]
    got = PCGradAggregation(seed=seed).coefficients(gram_matrix(x))
    assert torch.equal(got > 1, reference > 1)
    assert torch.allclose(got, reference, rtol=0, atol=1e-14)
    # With a float32 Gram matrix the same aggregation projects the wrong pairs.
    old = PCGradAggregation(seed=seed).coefficients((x @ x.t()).double())
    assert not torch.allclose(old, reference, rtol=0, atol=1e-14)
