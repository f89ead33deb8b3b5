"""Single-pair metrics: equal to FastReID's evaluate_rank, chunk-size invariant, exact on ties."""
import warnings

import numpy as np
import pytest
import torch
from evaluation_data import (
    float64_distance,
    positive_ties,
    reference_metrics,
    reference_ranks,
    reid_split,
)

import sfsc  # noqa: F401  (FastReID shims before fastreid.evaluation)
from fastreid.evaluation.rank import evaluate_rank
from fastreid.utils.compute_dist import build_dist
from sfsc.benchmark.speed.eval_timing import _tie_bounds
from sfsc.evaluation import MatchIndex, evaluate_ranking, make_scorer
from sfsc.evaluation.ranking import QueryBlock, rank_positives, rank_queries

METRIC_KEYS = ("mAP", "R1", "R5", "R10", "mINP")


@pytest.fixture(scope="module")
def split():
    return reid_split(seed=3)


def _ids(split):
    return split["qp"], split["qc"], split["gp"], split["gc"]


def _fastreid_dist(split, metric):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Euclidean path uses a deprecated addmm_ overload
        return build_dist(torch.from_numpy(split["qf"]), torch.from_numpy(split["gf"]), metric)


def _ours(split, **kwargs):
    return evaluate_ranking(split["qf"], split["gf"], *_ids(split), **kwargs)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_equals_fastreid_evaluate_rank(split, metric):
    dist = _fastreid_dist(split, metric)
    # FastReID's argsort orders tied distances arbitrarily: only a tie-free case has one answer.
    assert positive_ties(dist, *_ids(split)) == 0
    cmc, all_ap, all_inp = evaluate_rank(dist, split["qp"], split["gp"], split["qc"],
                                         split["gc"], use_cython=False)
    ours = _ours(split, metric=metric, chunk_size=32, backend="torch")
    assert ours.num_skipped == 2 and ours.num_valid == len(all_ap) == len(split["qp"]) - 2
    valid = MatchIndex.build(*_ids(split)).valid
    np.testing.assert_allclose(ours.per_query.ap[valid], all_ap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.per_query.inp[valid], all_inp, rtol=0, atol=1e-12)
    expected = dict(mAP=np.mean(all_ap) * 100, R1=cmc[0] * 100, R5=cmc[4] * 100,
                    R10=cmc[9] * 100, mINP=np.mean(all_inp) * 100)
    for key in METRIC_KEYS:  # FastReID's cmc is float32
        assert ours.as_dict()[key] == pytest.approx(expected[key], abs=1e-5), key
    assert 5 < ours.mAP < 95  # a non-trivial ranking


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_torch_blocks_are_bit_identical_to_build_dist(split, metric):
    dist = _fastreid_dist(split, metric)
    scorer = make_scorer("torch", metric)
    query, gallery = scorer.prepare(split["qf"], "query"), scorer.prepare(split["gf"], "gallery")
    rows = []
    # Chunks of 40 leave a 10-row last block, computed as the tail of a 40-row product.
    rank_queries(scorer, query, gallery, MatchIndex.build(*_ids(split)), chunk_size=40,
                 score_hook=lambda scores, block: rows.append(scores.clone()) or scores)
    scores = torch.cat(rows).numpy()
    np.testing.assert_array_equal(1 - scores if metric == "cosine" else -scores, dist)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunk_size_does_not_change_results(metric, backend):
    # Features whose scores are exact in any summation order, so blocks of any size give
    # identical numbers, ties (there are many) included: small integers for Euclidean; for
    # cosine ±1 in each of the 16 dimensions, so every norm is 4, x/|x| is exact and every
    # score is a multiple of 1/16. (Normalised float features are not enough: BLAS kernels
    # sum in block-dependent orders, which reorders near-ties on some CPUs.)
    rng = np.random.default_rng(0)
    split = reid_split(seed=1)
    dim = split["qf"].shape[1]
    centres = rng.integers(-2, 3, (100, dim)) if metric == "euclidean" \
        else rng.choice([-1, 1], (100, dim))
    for f, p in (("qf", "qp"), ("gf", "gp")):
        if metric == "euclidean":
            split[f] = (centres[split[p]] + rng.integers(-2, 3, split[f].shape))
        else:
            flips = np.where(rng.random(split[f].shape) < 0.2, -1, 1)
            split[f] = centres[split[p]] * flips
        split[f] = split[f].astype(np.float32)
    assert positive_ties(float64_distance(split["qf"], split["gf"], metric), *_ids(split)) > 0
    sizes = (1, 7, len(split["qp"]))
    runs = [_ours(split, metric=metric, backend=backend, chunk_size=c) for c in sizes]
    for run in runs[1:]:
        assert run.as_dict() == runs[0].as_dict()
        for name in ("ap", "first_rank", "inp"):
            np.testing.assert_array_equal(getattr(run.per_query, name),
                                          getattr(runs[0].per_query, name))
    assert 5 < runs[0].mAP < 95


def test_euclidean_and_cosine_differ_on_unnormalised_features(split):
    cosine, euclidean = _ours(split, metric="cosine"), _ours(split, metric="euclidean")
    assert abs(cosine.mAP - euclidean.mAP) > 0.1
    normalised = dict(split)
    for key in ("qf", "gf"):
        normalised[key] = split[key] / np.linalg.norm(split[key], axis=1, keepdims=True)
    # On unit vectors the squared distance is 2 - 2 cos: same ranking.
    assert _ours(normalised, metric="euclidean").mAP == pytest.approx(cosine.mAP, abs=1e-9)


def test_torch_ranking_and_row_groups_match_numpy(split):
    matches = MatchIndex.build(*_ids(split))
    scores = split["qf"] @ split["gf"].T
    chunk = matches.chunk(0, len(scores))
    reference = rank_positives(scores.copy(), *chunk)
    on_torch = rank_positives(torch.from_numpy(scores.copy()), *chunk, use_torch=True)
    grouped = rank_positives(scores.copy(), *chunk, max_elements=64)  # many row groups
    for ref, a, b in zip(reference, on_torch, grouped):
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(b, ref)


def test_ties_rank_negatives_first():
    # Identical features: every score ties. A tied negative ranks above a positive, so the
    # k-th positive's rank is k + (number of kept negatives).
    qp, qc = np.array([1, 2]), np.array([0, 0])
    gp, gc = np.array([1, 1, 1, 2, 3, 3]), np.array([1, 2, 0, 1, 1, 0])
    ones = np.ones((2, 4), np.float32)
    result = _ours(dict(qf=ones, gf=np.ones((6, 4), np.float32), qp=qp, qc=qc, gp=gp, gc=gc))
    # query 0: positives g0, g1; junk g2; negatives g3, g4, g5 -> ranks 4, 5.
    # query 1: positive g3; negatives g0, g1, g2, g4, g5 -> rank 6.
    ap = [(1 / 4 + 2 / 5) / 2, 1 / 6]
    np.testing.assert_allclose(result.per_query.ap, ap)
    np.testing.assert_allclose(result.per_query.inp, [2 / 5, 1 / 6])
    np.testing.assert_array_equal(result.per_query.first_rank, [4, 6])
    assert result.cmc[1] == 0 and result.cmc[5] == 50


def _tied_cosine_split():
    """±1 features in 16 dimensions: every norm is 4 and every cosine a multiple of 1/16, so
    float32 distances tie exactly, positives with negatives too."""
    rng = np.random.default_rng(0)
    split = reid_split(seed=1)
    centres = rng.choice([-1, 1], (100, split["qf"].shape[1]))
    for f, p in (("qf", "qp"), ("gf", "gp")):
        flips = np.where(rng.random(split[f].shape) < 0.2, -1, 1)
        split[f] = (centres[split[p]] * flips).astype(np.float32)
    return split


@pytest.mark.parametrize("ties, positives_first", [("pessimistic", False),
                                                   ("optimistic", True)])
def test_tie_orders_equal_a_written_out_worst_and_best_case(ties, positives_first):
    split = _tied_cosine_split()
    dist = _fastreid_dist(split, "cosine")
    assert positive_ties(dist, *_ids(split)) > 100
    matches = MatchIndex.build(*_ids(split))
    ap, first, inp = rank_positives(-dist, *matches.chunk(0, len(dist)), ties=ties)
    valid = matches.valid
    expected = reference_ranks(dist, *_ids(split), positives_first=positives_first)
    np.testing.assert_allclose(ap[valid], expected[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(first[valid], expected[:, 1])
    np.testing.assert_allclose(inp[valid], expected[:, 2], rtol=0, atol=1e-12)


def test_fastreids_value_on_tied_distances_lies_within_the_tie_bounds():
    # The speed benchmark's agreement check accepts a difference to FastReID when both values
    # lie in [worst, best] over the orders of tied distances (eval_timing._tie_bounds):
    # FastReID's argsort must land inside them whatever the gallery order.
    split = _tied_cosine_split()
    bounds = _tie_bounds(_fastreid_dist(split, "cosine"), MatchIndex.build(*_ids(split)))
    dist = _fastreid_dist(split, "cosine")
    for key, (worst, best) in bounds.items():
        reference = (reference_metrics(dist, *_ids(split))[key],
                     reference_metrics(dist, *_ids(split), positives_first=True)[key])
        assert (worst, best) == pytest.approx(reference, abs=1e-9), key
    assert bounds["mAP"][1] - bounds["mAP"][0] > 1  # the ties matter here
    seen = set()
    for seed in range(3):  # gallery orders: FastReID breaks the ties differently in each
        order = np.random.default_rng(seed).permutation(len(split["gp"]))
        shuffled = dict(split, gf=split["gf"][order], gp=split["gp"][order],
                        gc=split["gc"][order])
        cmc, all_ap, all_inp = evaluate_rank(_fastreid_dist(shuffled, "cosine"),
                                             shuffled["qp"], shuffled["gp"], shuffled["qc"],
                                             shuffled["gc"], use_cython=False)
        values = dict(mAP=np.mean(all_ap) * 100, R1=cmc[0] * 100, R5=cmc[4] * 100,
                      R10=cmc[9] * 100, mINP=np.mean(all_inp) * 100)
        for key, (worst, best) in bounds.items():
            assert worst - 1e-4 <= values[key] <= best + 1e-4, (key, seed, values[key])
        seen.add(round(values["mAP"], 6))
    assert len(seen) > 1  # the orders did differ, so the bounds were put to the test


def test_score_hook_sees_every_block_and_changes_the_ranking(split):
    seen = []

    def negate(scores, block: QueryBlock):
        seen.append((block.start, block.stop))
        return -scores

    hooked = _ours(split, chunk_size=25, score_hook=negate)
    flipped = _ours(dict(split, qf=-split["qf"]), chunk_size=25)
    assert hooked.as_dict() == flipped.as_dict() != _ours(split).as_dict()
    assert seen == [(0, 25), (25, 50), (50, 75), (75, 90)]


@pytest.mark.parametrize("change, message", [
    (lambda s: s["qf"].__setitem__((3, 2), np.nan), "NaN or inf"),
    (lambda s: s.__setitem__("gf", s["gf"][:, :8]), "dimension"),
    (lambda s: s.__setitem__("gp", s["gp"][:-1]), "g_pids has"),
    (lambda s: s.__setitem__("qp", s["qp"] + 1000), "no query has a valid gallery match"),
])
def test_bad_inputs_raise_clear_errors(split, change, message):
    broken = {k: v.copy() for k, v in split.items()}
    change(broken)
    with pytest.raises(ValueError, match=message):
        _ours(broken)
