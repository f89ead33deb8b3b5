"""Exact top-k retrieval with faiss: equal to a brute-force ranking, junk removed."""
import numpy as np
import pytest
from evaluation_data import float64_distance, reid_split

from sfsc.evaluation import MatchIndex, cmc_from_topk, evaluate_ranking, search_topk


@pytest.fixture(scope="module")
def split():
    return reid_split(seed=3)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_topk_equals_brute_force_without_junk(split, metric):
    matches = MatchIndex.build(split["qp"], split["qc"], split["gp"], split["gc"])
    scores, indices = search_topk(split["qf"], split["gf"], 12, metric=metric, matches=matches)
    dist = float64_distance(split["qf"], split["gf"], metric)
    junk = (split["gp"][None] == split["qp"][:, None]) & (split["gc"][None] == split["qc"][:, None])
    assert junk.any()
    dist[junk] = np.inf
    expected = np.argsort(dist, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(indices, expected)
    reference = -np.take_along_axis(dist, expected, axis=1)
    if metric == "cosine":
        reference += 1
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_cmc_from_topk_equals_the_ranking_metrics(split):
    ids = (split["qp"], split["qc"], split["gp"], split["gc"])
    matches = MatchIndex.build(*ids)
    _, indices = search_topk(split["qf"], split["gf"], 10, matches=matches)
    cmc = cmc_from_topk(indices, split["qp"], split["gp"], valid=matches.valid)
    metrics = evaluate_ranking(split["qf"], split["gf"], *ids)
    assert cmc == pytest.approx(metrics.cmc, abs=1e-9)


def test_short_gallery_is_padded():
    rng = np.random.default_rng(0)
    scores, indices = search_topk(rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), 8)
    assert indices.shape == (3, 8) and np.all(indices[:, 5:] == -1)
    assert np.all(np.isneginf(scores[:, 5:])) and np.all(np.sort(indices[:, :5], 1) == range(5))
