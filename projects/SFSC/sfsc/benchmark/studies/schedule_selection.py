"""The converged schedule of a committed protocol (``benchmarks/SyntheticHardLong/PROTOCOL.md``
for the testbed, ``benchmarks/HangulReID/PROTOCOL.md``): its candidates, the convergence
criterion on the unified full model, and the rule (the shortest candidate that meets the
criterion, else the cap).

Each candidate trains the data set's unified full model (the judged run) first, and only the
chosen candidate its other unified rows (``configs/<dataset>``, seed 0) with its schedule as
overrides, through the benchmark runner, so a finished candidate is a committed run record
that any machine reuses; its effective config equals that of the converged configs once the
schedule is written into their Base, so the chosen candidate's records serve the converged
table as they are.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence, Tuple

from ..tables.methods import METHODS, benchmark_runs
from ..tables.records import curves_to_series, read_record
from ..tables.runner import BenchmarkRunner
from ..tables.suite import run_suite, sub_widths

__all__ = ["Schedule", "CANDIDATES", "STEP_CAP", "Protocol", "TESTBED", "HANGUL",
           "PROTOCOLS", "Convergence", "convergence", "choose", "train_judged_run",
           "select_schedule"]

DATASET = "SyntheticHard"  # the testbed's data, input and weights: only the schedule changes
JUDGED_RUN = "unified_w1"
SEED = 0
STEP_CAP = 2500
ACCURACY_MIN = 0.95  # mean training accuracy over the last 4 % of the steps
LOSS_DROP_MAX = 0.05  # relative fall of the loss from [0.80 T, 0.84 T) to [0.96 T, T]


@dataclass(frozen=True)
class Schedule:
    """One candidate: the bag of tricks' shape for ``epochs`` epochs (steps and warm-up in the
    units FastReID's SOLVER takes: epochs for ``lr_steps``, iterations for ``warmup_iters``)."""

    epochs: int
    lr_steps: Tuple[int, int]
    warmup_iters: int

    def overrides(self) -> List[str]:
        """KEY VALUE pairs for tools/benchmark.py and tools/train_net.py."""
        return ["SOLVER.MAX_EPOCH", str(self.epochs),
                "SOLVER.STEPS", f"[{self.lr_steps[0]},{self.lr_steps[1]}]",
                "SOLVER.WARMUP_ITERS", str(self.warmup_iters),
                "SOLVER.CHECKPOINT_PERIOD", str(self.epochs), "TEST.EVAL_PERIOD", str(self.epochs)]


# PROTOCOL.md's table, ascending (68 steps an epoch; 36 epochs = 2,448 steps, under the cap).
CANDIDATES: Tuple[Schedule, ...] = (
    Schedule(12, (4, 9), 68), Schedule(18, (6, 14), 136), Schedule(24, (8, 18), 136),
    Schedule(30, (10, 22), 136), Schedule(36, (12, 27), 204))


@dataclass(frozen=True)
class Protocol:
    """A committed selection protocol: the data set whose configs train (a folder under
    configs/), its candidates in ascending order (the last is the cap), the step cap and where
    its selection is committed (beside the protocol, relative to the repository)."""

    dataset: str
    candidates: Tuple[Schedule, ...]
    step_cap: int
    output: str


TESTBED = Protocol(DATASET, CANDIDATES, STEP_CAP,
                   os.path.join("benchmarks", "SyntheticHardLong", "selection"))
# benchmarks/HangulReID/PROTOCOL.md's table (199 steps an epoch; the testbed's warm-up rule,
# an epoch per 12; 7 epochs = 1,393 steps: a switchable run within about 30 min on 2 cores).
HANGUL = Protocol("HangulReID", (
    Schedule(3, (1, 2), 199), Schedule(4, (1, 3), 199), Schedule(5, (2, 4), 199),
    Schedule(6, (2, 4), 199), Schedule(7, (2, 5), 199)), 1400,
    os.path.join("benchmarks", "HangulReID", "selection"))
PROTOCOLS: Dict[str, Protocol] = {p.dataset: p for p in (TESTBED, HANGUL)}


@dataclass(frozen=True)
class Convergence:
    """The criterion's two numbers for a run of ``steps`` iterations."""

    steps: int
    accuracy: float  # mean cls_accuracy over [0.96 T, T], in [0, 1]
    loss_drop: float  # (L_a - L_b) / L_a

    @property
    def met(self) -> bool:
        return self.accuracy >= ACCURACY_MIN and self.loss_drop < LOSS_DROP_MAX


def _window_mean(points: Sequence[Tuple[int, float]], lo: float, hi: float, closed: bool,
                 name: str) -> float:
    inside = [v for it, v in points if lo <= it and (it <= hi if closed else it < hi)]
    if not inside:
        raise ValueError(f"no logged {name} in iterations [{lo:g}, {hi:g}{']' if closed else ')'}"
                         f": log more often (the criterion needs a value in each window)")
    return math.fsum(inside) / len(inside)


def convergence(series: Dict[str, List[Tuple[int, float]]], steps: int) -> Convergence:
    """The criterion from logged scalars (``{key: [(iteration, value), ...]}``, as a record's
    curves or metrics.json give them) of a run of ``steps`` iterations (0 .. steps - 1)."""
    for key in ("cls_accuracy", "total_loss"):
        if key not in series:
            raise ValueError(f"the run logged no {key}: is it a training run's record?")
    t = steps
    accuracy = _window_mean(series["cls_accuracy"], 0.96 * t, t, True, "cls_accuracy")
    before = _window_mean(series["total_loss"], 0.80 * t, 0.84 * t, False, "total_loss")
    after = _window_mean(series["total_loss"], 0.96 * t, t, True, "total_loss")
    return Convergence(steps, accuracy, (before - after) / before)


def choose(results: Dict[int, Convergence],
           candidates: Sequence[Schedule] = CANDIDATES) -> Tuple[int, bool]:
    """(epochs, met): the shortest of ``candidates`` that meets the criterion; else the cap
    (the last), unmet.

    ``results`` must hold every candidate shorter than the first that meets it."""
    for schedule in candidates:
        if schedule.epochs not in results:
            raise ValueError(f"candidate E={schedule.epochs} has not been run; the rule goes "
                             "in ascending order")
        if results[schedule.epochs].met:
            return schedule.epochs, True
    return candidates[-1].epochs, False


def train_judged_run(root: str, runs_root: str, output: str, opts: Sequence[str],
                     dataset: str = DATASET) -> None:
    """Train (or reuse the record of) the candidate's unified full model alone: the criterion
    reads nothing else, and the narrower rows of a candidate that is not chosen serve no table."""
    config_dir = os.path.join(root, "configs", dataset)
    runs = [r for r in benchmark_runs([METHODS["unified"]], sub_widths(config_dir, "R18", opts),
                                      "R18") if r.name == JUDGED_RUN]
    BenchmarkRunner(root, config_dir, os.path.join(runs_root, dataset), runs, [SEED], list(opts),
                    records_dir=os.path.join(output, dataset, "runs")).run_all()


def _judge(output: str, dataset: str) -> Convergence:
    path = os.path.join(output, dataset, "runs", f"seed{SEED}", f"{JUDGED_RUN}.json")
    record = read_record(path)
    if record is None or not record.get("curves"):
        raise RuntimeError(f"{path} holds no training curves")
    series = curves_to_series(record["curves"])
    steps = max(record["curves"]["iterations"]) + 1
    return convergence(series, steps)


def select_schedule(root: str, runs_root: str, output: str, command: str,
                    log: Callable[[str], None] = print, protocol: Protocol = TESTBED) -> Dict:
    """Run the candidates' unified full models in ascending order until one meets the criterion
    (records reused), then the chosen candidate's other unified rows and its report; returns the
    selection: every candidate run, its numbers, the choice. Candidate E's records go to
    ``output/E<E>/<dataset>`` (runs under ``runs_root/E<E>``)."""
    dataset = protocol.dataset
    results: Dict[int, Convergence] = {}
    for schedule in protocol.candidates:
        name = f"E{schedule.epochs}"
        log(f"Schedule selection: candidate {name} ({' '.join(schedule.overrides())})")
        out = os.path.join(output, name)
        train_judged_run(root, os.path.join(runs_root, name), out, schedule.overrides(),
                         dataset=dataset)
        results[schedule.epochs] = _judge(out, dataset)
        c = results[schedule.epochs]
        log(f"Schedule selection: {name}, {c.steps} steps: training accuracy {c.accuracy:.4f} "
            f"(needs >= {ACCURACY_MIN}), loss drop {c.loss_drop:.4f} (needs < {LOSS_DROP_MAX})"
            f": {'met' if c.met else 'not met'}")
        if c.met:
            break
    epochs, met = choose(results, protocol.candidates)
    schedule = next(s for s in protocol.candidates if s.epochs == epochs)
    name = f"E{epochs}"
    log(f"Schedule selection: chose {name}; training its other unified rows for the table")
    run_suite(root, dataset, ["unified"], [SEED], "R18", os.path.join(runs_root, name),
              os.path.join(output, name), schedule.overrides(), f"{command}  # candidate {name}")
    return {"command": command, "dataset": dataset, "judged_run": JUDGED_RUN, "seed": SEED,
            "criterion": {"accuracy_min": ACCURACY_MIN, "loss_drop_max": LOSS_DROP_MAX},
            "candidates": {f"E{e}": asdict(c) | {"met": c.met} for e, c in results.items()},
            "chosen": asdict(schedule) | {"steps": results[epochs].steps, "met": met}}
