"""The converged schedule's selection: the candidates are the committed protocol's, the criterion
computes the protocol's two numbers, and the rule stops at the shortest candidate that meets it
(else the cap)."""
import json
import os
import re

import pytest
from test_configs import _merged

from sfsc.benchmark.studies import schedule_selection
from sfsc.benchmark.studies.schedule_selection import (
    CANDIDATES,
    STEP_CAP,
    Convergence,
    choose,
    convergence,
    select_schedule,
)
from sfsc.benchmark.tables.records import flatten, write_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOCOL = os.path.join(ROOT, "benchmarks", "SyntheticHardLong", "PROTOCOL.md")
STEPS_PER_EPOCH = 68  # the testbed, as the protocol says


def test_the_candidates_are_the_protocols_table():
    with open(PROTOCOL) as f:
        rows = re.findall(r"^\| (\d+) \| ([\d,]+) \| \[(\d+), (\d+)\] \| (\d+) \|$", f.read(), re.M)
    assert [(int(e), (int(a), int(b)), int(w)) for e, _, a, b, w in rows] == \
        [(c.epochs, c.lr_steps, c.warmup_iters) for c in CANDIDATES]
    assert [int(steps.replace(",", "")) for _, steps, *_ in rows] == \
        [c.epochs * STEPS_PER_EPOCH for c in CANDIDATES]
    assert max(c.epochs for c in CANDIDATES) * STEPS_PER_EPOCH <= STEP_CAP
    assert CANDIDATES[1].overrides() == [
        "SOLVER.MAX_EPOCH", "18", "SOLVER.STEPS", "[6,14]", "SOLVER.WARMUP_ITERS", "136",
        "SOLVER.CHECKPOINT_PERIOD", "18", "TEST.EVAL_PERIOD", "18"]


def _logged(steps, accuracy, loss):
    """Scalars as FastReID logs them, every 20 iterations and at the last: value(iteration)."""
    its = [it for it in range(steps) if (it + 1) % 20 == 0 or it == steps - 1]
    return {"cls_accuracy": [(it, accuracy(it)) for it in its],
            "total_loss": [(it, loss(it)) for it in its]}


def test_the_criterion_reads_the_protocols_windows():
    # T = 1000: accuracy over [960, 1000] (logged at 979, 999), the loss over [800, 840)
    # (819, 839) against [960, 1000]; every other logged value is a decoy.
    series = _logged(1000, lambda it: {979: 0.96, 999: 0.98}.get(it, 0.1),
                     lambda it: {819: 2.0, 839: 2.2, 979: 2.05, 999: 2.03}.get(it, 99.0))
    c = convergence(series, 1000)
    assert c.accuracy == pytest.approx(0.97)
    assert c.loss_drop == pytest.approx((2.1 - 2.04) / 2.1)
    assert c.met
    assert not convergence(_logged(1000, lambda it: 0.949, lambda it: 1.0), 1000).met
    falling = _logged(1000, lambda it: 1.0, lambda it: 3.0 - it / 1000)  # 2.17 -> 2.01: -7.5 %
    assert convergence(falling, 1000).loss_drop == pytest.approx((2.171 - 2.011) / 2.171)
    assert not convergence(falling, 1000).met
    with pytest.raises(ValueError, match="no logged total_loss in iterations"):
        convergence(_logged(30, lambda it: 1.0, lambda it: 1.0), 30)  # no value in [24, 25.2)


def _c(met: bool) -> Convergence:
    return Convergence(100, 0.99 if met else 0.5, 0.0)


def test_the_rule_takes_the_shortest_that_meets_it_else_the_cap():
    assert choose({12: _c(False), 18: _c(True), 24: _c(True)}) == (18, True)
    assert choose({e.epochs: _c(False) for e in CANDIDATES}) == (36, False)
    with pytest.raises(ValueError, match="E=12 has not been run"):
        choose({18: _c(True)})


def test_the_selection_trains_in_ascending_order_and_stops_at_the_first_that_converges(
        tmp_path, monkeypatch):
    trained, reported = [], []

    def fake_judged_run(root, runs_root, output, opts, dataset="SyntheticHard"):
        epochs = int(opts[opts.index("SOLVER.MAX_EPOCH") + 1])
        trained.append(epochs)
        steps = epochs * STEPS_PER_EPOCH
        converged = epochs >= 24  # accuracy 0.99 and a flat loss from 24 epochs on
        series = _logged(steps, lambda it: 0.99 if converged else 0.9,
                         lambda it: 1.0 if converged else 2.0 - it / steps)
        its = [it for it, _ in series["cls_accuracy"]]
        write_record(os.path.join(output, dataset, "runs", "seed0", "unified_w1.json"),
                     {"run": "unified_w1", "curves": {"iterations": its, "series": {
                         key: [v for _, v in points] for key, points in series.items()}}})

    def fake_suite(root, dataset, methods, seeds, net, runs_root, output, opts, command):
        reported.append((dataset, tuple(methods), tuple(seeds),
                         int(opts[opts.index("SOLVER.MAX_EPOCH") + 1])))

    monkeypatch.setattr(schedule_selection, "train_judged_run", fake_judged_run)
    monkeypatch.setattr(schedule_selection, "run_suite", fake_suite)
    selection = select_schedule(ROOT, str(tmp_path / "logs"), str(tmp_path / "sel"), "cmd",
                                log=lambda msg: None)
    # Only the judged full model of the candidates that are not chosen; every unified row of
    # the chosen one (its report).
    assert trained == [12, 18, 24]
    assert reported == [("SyntheticHard", ("unified",), (0,), 24)]
    assert list(selection["candidates"]) == ["E12", "E18", "E24"]
    assert [c["met"] for c in selection["candidates"].values()] == [False, False, True]
    assert selection["chosen"] == {"epochs": 24, "lr_steps": (8, 18), "warmup_iters": 136,
                                   "steps": 1632, "met": True}
    json.dumps(selection)  # what the tool writes


def test_a_candidate_trains_its_unified_full_model_alone_with_the_schedule(tmp_path, monkeypatch):
    seen = []

    def fake_run_all(runner, need_checkpoints=()):
        seen.append(([r.name for r in runner.runs], runner.seeds, runner.extra_opts,
                     runner.records_dir))
        return []

    monkeypatch.setattr(schedule_selection.BenchmarkRunner, "run_all", fake_run_all)
    schedule_selection.train_judged_run(ROOT, str(tmp_path / "logs"), str(tmp_path / "E12"),
                                        CANDIDATES[0].overrides())
    assert seen == [(["unified_w1"], [0], CANDIDATES[0].overrides(),
                     str(tmp_path / "E12" / "SyntheticHard" / "runs"))]


def test_the_converged_configs_are_the_testbeds_with_the_chosen_schedule():
    """configs/SyntheticHardLong: every testbed method, its config identical but for the
    schedule the committed selection chose (and where its runs write)."""
    with open(os.path.join(ROOT, "benchmarks", "SyntheticHardLong", "selection",
                           "selection.json")) as f:
        chosen = json.load(f)["chosen"]
    schedule = next(c for c in CANDIDATES if c.epochs == chosen["epochs"])
    overrides = schedule.overrides()
    expected = {key: value for key, value in zip(overrides[::2], overrides[1::2])}
    testbed, converged = (os.path.join(ROOT, "configs", d) for d in ("SyntheticHard",
                                                                     "SyntheticHardLong"))
    # every testbed method exists at the converged schedule (candidate methods only there)
    assert {n.replace("SyntheticHard", "SyntheticHardLong") for n in os.listdir(testbed)} <= \
        set(os.listdir(converged))
    for name in os.listdir(testbed):
        old = flatten(_merged(os.path.join(testbed, name)))
        new = flatten(_merged(os.path.join(converged, name.replace("SyntheticHard",
                                                                       "SyntheticHardLong"))))
        changed = {k for k in old if old[k] != new[k]}
        assert changed <= set(expected) | {"OUTPUT_DIR", "SFSC.OLD_MODEL.WEIGHTS"}, name
        assert {k: str(new[k]).replace(" ", "") for k in expected} == expected, name
