"""The project's core claim in miniature, on three seeds: one SFSC training makes a 0.25x
sub-model's queries retrieve from the full model's gallery, while a 0.25x model trained on its
own cannot (it is scored against the same full model, which its training never saw)."""
import json
import os

import pytest

from sfsc.benchmark.studies.learning_check import compare, train_small_many

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "Synthetic")
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A plain 0.25x model trained alone (seed 0: its features live in a space of their own)
    and one SFSC run per seed, two processes at a time."""
    root = tmp_path_factory.mktemp("learning")
    # The SFSC runs train the core pair only (full model + 0.25x): the same claim at half the cost.
    jobs = [(os.path.join(CONFIGS, "unified_R18.yml"), str(root / "w025"), 0,
             ["SFSC.TRAIN_WIDTH", "0.25"])]
    jobs += [(os.path.join(CONFIGS, "sfsc_R18.yml"), str(root / f"sfsc{s}"), s,
              ["SFSC.WIDTHS", "[0.25]"]) for s in SEEDS]
    separate, *sfsc = train_small_many(jobs, processes=2)
    return separate, dict(zip(SEEDS, sfsc))


@pytest.fixture
def separate(trained):
    return trained[0]


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def sfsc_run(request, trained):
    return trained[1][request.param]


def test_sfsc_sub_model_is_compatible_with_the_full_model(sfsc_run, separate):
    with open(os.path.join(sfsc_run, "compatibility.json")) as f:
        assert json.load(f)["widths"] == [0.25, 1.0]
    m = compare(sfsc_run, separate)
    print(f"mAP: SFSC q0.25/g1.0 {m['cross']:.1f}, SFSC 0.25 alone {m['sub_own']:.1f}, "
          f"SFSC 1.0 {m['full']:.1f}; separate q0.25/g1.0 {m['independent']:.1f}, "
          f"separate 0.25 alone {m['own']:.1f}, chance {m['chance']:.1f}")
    # Measured on an AMD EPYC (one thread per run, each in a fresh process; kl_batch loss),
    # seeds 0 / 1 / 2, at two states of the code (the second with the forward-only logit
    # clamp): cross 36.4 / 27.7 / 34.1 and 34.3 / 31.2 / 37.1 (sd of the six 3.5),
    # independent 7.4 / 8.8 / 9.8 and 5.7 / 9.7 / 7.3, own 31.2 and 26.2, chance 6.9.
    # Smallest margin of each bound over both: own 9.3, independent 9.1, cross 8.9 (the
    # first's seed 1, 2.5 sd), where cross must also beat the independent model by 10.
    bounds = {"own": m["chance"] + 10, "independent": m["chance"] + 12,
              "cross": max(m["independent"] + 10, 0.6 * m["own"])}
    print(f"bounds: own > {bounds['own']:.1f}, independent < {bounds['independent']:.1f}, "
          f"cross > {bounds['cross']:.1f}")
    assert m["own"] > bounds["own"]  # the separately trained model did learn ...
    assert m["independent"] < bounds["independent"]  # ... but in a space of its own
    # One SFSC training makes the widths compatible, at close to the small model's own accuracy.
    assert m["cross"] > bounds["cross"]
