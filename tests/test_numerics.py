"""The training-numerics fingerprint: it sees a change of training numerics, ignores what does
not change them and other CPUs' rounding, and the committed fingerprints are today's."""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from benchmark_runs import ROOT

from fastreid.config import get_cfg
from sfsc.benchmark.tables.fingerprints import method_fingerprints, reference_file
from sfsc.config import add_sfsc_config
from sfsc.engine import numerics
from sfsc.modeling.losses.evidential_loss import _ClampForward
from sfsc.modeling.meta_arch.switchable_baseline import SwitchableBaseline

SFSC = os.path.join(ROOT, "configs", "SyntheticHardLong", "sfsc_R18.yml")


def _cfg(path=SFSC, *opts):
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


def _fresh(cfg):
    numerics._CACHE.clear()
    return numerics.reference_numbers(cfg)


@pytest.fixture(scope="module")
def sfsc_numbers():
    return _fresh(_cfg())


def test_the_committed_fingerprints_are_todays():
    with open(reference_file(ROOT)) as f:
        committed = json.load(f)
    today = method_fingerprints(ROOT, committed["dataset"])
    assert sorted(today) == sorted(committed["runs"])
    moved = {name: numerics.differences(committed["runs"][name], numbers)
             for name, numbers in today.items()}
    moved = {name: rows[:3] for name, rows in moved.items() if rows}
    assert not moved, (
        f"The training numerics changed: {moved}. If on purpose, rewrite the reference "
        "(python tools/numerics_fingerprint.py --write) and retrain the records that went stale "
        "(python tools/benchmark.py --dataset <folder> ... --dry-run lists them).")


def test_the_reference_repeats_and_leaves_the_callers_state_alone(sfsc_numbers):
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    threads = torch.get_num_threads()
    expected = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    again = _fresh(_cfg())
    assert again == sfsc_numbers  # one thread, same code: bit for bit
    assert (torch.rand(1), np.random.rand(), random.random()) == expected
    assert torch.get_num_threads() == threads
    assert len(sfsc_numbers) > 60 and all(np.isfinite(list(sfsc_numbers.values())))


def test_a_change_of_the_loss_gradient_is_seen(sfsc_numbers, monkeypatch):
    # The straight-through clamp this project had before: the forward pass is the same, only
    # the gradient of saturated logits differs, and the reference puts logits there.
    def straight_through(ctx, grad):
        return grad, None

    monkeypatch.setattr(_ClampForward, "backward",
                        staticmethod(straight_through))
    moved = numerics.differences(sfsc_numbers, _fresh(_cfg()))
    assert any(row.startswith("step0/norm/compat@") for row in moved), moved
    assert not any(row.startswith("step0/loss/") for row in moved), moved  # same forward


def test_a_change_of_an_aggregation_or_the_optimizer_is_seen(sfsc_numbers):
    pcgrad_off = _fresh(_cfg(SFSC, "SFSC.AGGREGATION", "sum"))
    assert any("/update/" in row for row in numerics.differences(sfsc_numbers, pcgrad_off))
    other_lr = _fresh(_cfg(SFSC, "SOLVER.BASE_LR", "0.0007"))
    moved = numerics.differences(sfsc_numbers, other_lr)
    assert moved and all(not row.startswith("step0/") for row in moved), moved


def test_what_does_not_change_numerics_keeps_the_fingerprint(sfsc_numbers, monkeypatch):
    # The per-width diagnostics (accuracy, norms, u) are logged, not trained on.
    monkeypatch.setattr(SwitchableBaseline, "_record", lambda self, *args, **kwargs: None)
    assert numerics.differences(sfsc_numbers, _fresh(_cfg())) == []
    # Neither do the seed, the output folder or the dataset's name.
    elsewhere = _cfg(SFSC, "SEED", "3", "OUTPUT_DIR", "elsewhere",
                     "DATASETS.NAMES", '("SyntheticReID",)')
    assert numerics.differences(sfsc_numbers, _fresh(elsewhere)) == []


def test_other_rounding_stays_within_the_tolerance(sfsc_numbers, tmp_path):
    # Another SIMD path (no vector instructions at all) and two threads: other summation orders,
    # as another CPU has. Measured: < 1e-5 on the first step, < 2e-3 after.
    script = (f"import json, sfsc, torch\nfrom test_numerics import _cfg\n"
              f"from sfsc.engine import numerics\n"
              f"with numerics._isolated(2):\n"
              f"    n = numerics._compute(numerics._tiny(_cfg()))\n"
              f"json.dump(n, open({str(tmp_path / 'n.json')!r}, 'w'))\n")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                           os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    with open(tmp_path / "n.json") as f:
        other = json.load(f)
    assert other != sfsc_numbers  # the rounding did differ
    assert numerics.differences(sfsc_numbers, other) == []


def test_a_zero_matches_rounding_noise_but_not_a_real_change():
    assert numerics.differences({"step1/norm/head": 0.0}, {"step1/norm/head": 1e-12}) == []
    assert numerics.differences({"step0/norm/head": 2.0}, {"step0/norm/head": 2.0 + 1e-5}) == []
    assert numerics.differences({"step0/norm/head": 2.0}, {"step0/norm/head": 2.001}) != []
    assert numerics.differences({"step2/moved/head": 1e-6}, {"step2/moved/head": 2e-6}) != []
