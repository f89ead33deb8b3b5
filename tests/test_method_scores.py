"""The method search's scores and rules (benchmarks/method_search/PROTOCOL.md) against hand
computations on made-up results."""
import math

import pytest

from sfsc.benchmark.tables.method_scores import (
    confirmation_verdict,
    cross_row,
    pooled_sd,
    rank_screen,
    score,
    selection_verdict,
)


def _matrix(row, diagonal=None):
    """A 4x4 mAP matrix whose last column is ``row`` (and diagonal ``diagonal``)."""
    m = [[1.0] * 4 for _ in range(4)]
    for i in range(4):
        m[i][3] = row[i]
        if diagonal:
            m[i][i] = diagonal[i]
    return m


def _results(methods):
    return {"methods": {name: {"widths": [0.25, 0.5, 0.75, 1.0], "seeds": sorted(by_seed),
                               "mAP": {"per_seed": [by_seed[k] for k in sorted(by_seed)]}}
                        for name, by_seed in methods.items()}}


SFSC = {0: [40, 60, 70, 74], 1: [41, 61, 70, 75], 2: [42, 59, 71, 74]}
UNIFIED = {k: [20, 55, 68, 75.5] for k in range(5)}


def test_the_score_is_the_mean_of_the_cross_row_and_the_unified_diagonal():
    results = _results({"sfsc": {0: _matrix(SFSC[0])},
                        "unified": {0: _matrix([9, 9, 9, 9], UNIFIED[0])}})
    assert cross_row(results, "sfsc", 0) == [40, 60, 70, 74]
    assert score(results, "sfsc", 0) == pytest.approx(61.0)
    assert cross_row(results, "unified", 0) == [20, 55, 68, 75.5]  # its own galleries


def test_pooled_sd_by_hand():
    assert pooled_sd([1, 2, 3], [2, 4, 6]) == pytest.approx(math.sqrt((1 + 4) / 2))
    assert pooled_sd([5], [6]) == 0.0


def test_the_screen_ranks_by_score_and_breaks_ties_by_the_full_model():
    rows = {"a": [50, 60, 70, 70], "b": [40, 60, 70, 80], "c": [10, 10, 10, 10],
            "d": [30, 60, 70, 70]}  # a and b tie at S = 62.5
    results = _results({k: {0: _matrix(v)} for k, v in rows.items()})
    ranked = rank_screen(results, list(rows), keep=2)
    assert [r["method"] for r in ranked] == ["b", "a", "d", "c"]
    assert [r["chosen"] for r in ranked] == [True, True, False, False]


def test_a_tie_is_a_distance_not_a_rounding():
    # S = 62.504 and 62.506: 0.002 apart, on either side of a rounding edge
    rows = {"a": [50, 60, 70, 70.016], "b": [50.024, 60, 70, 70]}
    results = _results({k: {0: _matrix(v)} for k, v in rows.items()})
    assert [round(score(results, k, 0), 3) for k in "ab"] == [62.504, 62.506]
    ranked = rank_screen(results, ["b", "a"], keep=1)
    assert [r["method"] for r in ranked] == ["a", "b"] and ranked[0]["chosen"]
    # beyond the tie distance the score decides, whatever the full model
    rows["b"][0] += 0.1
    results = _results({k: {0: _matrix(v)} for k, v in rows.items()})
    assert [r["method"] for r in rank_screen(results, ["a", "b"])] == ["b", "a"]


def test_a_candidate_is_chosen_only_when_every_rule_holds():
    better = {k: [v[0] + 4, v[1] + 1, v[2] + 1, v[3] + 0.5] for k, v in SFSC.items()}
    results = _results({"sfsc": {k: _matrix(v) for k, v in SFSC.items()},
                        "better": {k: _matrix(v) for k, v in better.items()},
                        "unified": {k: _matrix([0] * 4, UNIFIED[k]) for k in range(3)}})
    verdict = selection_verdict(results, "better")
    assert verdict["d"] == pytest.approx([1.625] * 3) and verdict["pooled_sd"] > 0
    assert verdict["rule1"] and verdict["rule2"] and verdict["rule3"]
    # one seed of the other sign fails rule 1, whatever the mean
    mixed = {**better, 2: [30, 59, 71, 74]}
    results["methods"]["mixed"] = _results({"m": {k: _matrix(v) for k, v in mixed.items()}}
                                           )["methods"]["m"]
    assert not selection_verdict(results, "mixed")["rule1"]
    # a full model more than a point under the unified one fails rule 3
    weak_full = {k: [v[0] + 4, v[1] + 1, v[2] + 1, 73.0] for k, v in SFSC.items()}
    results["methods"]["weak"] = _results({"w": {k: _matrix(v) for k, v in weak_full.items()}}
                                          )["methods"]["w"]
    verdict = selection_verdict(results, "weak")
    assert verdict["rule1"] and not verdict["rule3"] and not verdict["rule2"]


def test_confirmation_needs_every_seed():
    results = _results({"sfsc": {3: _matrix([40] * 4), 4: _matrix([40] * 4)},
                        "c": {3: _matrix([41] * 4), 4: _matrix([39.9] * 4)}})
    assert confirmation_verdict(results, "c")["wins"] is False
    results["methods"]["c"]["mAP"]["per_seed"][1] = _matrix([40.1] * 4)
    assert confirmation_verdict(results, "c")["wins"] is True
