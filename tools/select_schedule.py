#!/usr/bin/env python3
"""Choose a converged schedule by its committed protocol: train the data set's unified full
model (seed 0) under each candidate schedule, shortest first, until it meets the convergence
criterion (else the cap), then the chosen candidate's other unified rows, and write the
selection.

    python tools/select_schedule.py                       # SyntheticHardLong/PROTOCOL.md
    python tools/select_schedule.py --dataset HangulReID  # HangulReID/PROTOCOL.md

Candidate E's runs train into ``--runs-root/E<E>`` and leave their records and report in
``--output/E<E>/<dataset>`` (commit them as each finishes: a record that matches is not
trained again, on any machine); the selection goes to ``--output/selection.json``, and the last
lines print the Base config's schedule.
"""
import argparse
import json
import os
import shlex
import sys

import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from sfsc.benchmark.studies.schedule_selection import PROTOCOLS, select_schedule
from sfsc.benchmark.tables.child_process import exit_on_sigterm
from sfsc.engine.defaults import exit_on_user_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="SyntheticHard", choices=sorted(PROTOCOLS),
                        help="whose protocol: the folder under configs/ its candidates train")
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "logs", "schedule_selection"))
    parser.add_argument("--output", default="", help="default: beside the protocol "
                        "(benchmarks/SyntheticHardLong/selection, benchmarks/HangulReID/selection)")
    args = parser.parse_args(argv)
    protocol = PROTOCOLS[args.dataset]
    output = args.output or os.path.join(ROOT, protocol.output)
    command = "python tools/select_schedule.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    selection = select_schedule(ROOT, args.runs_root, output, command.strip(), protocol=protocol)
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, "selection.json")
    with open(path, "w") as f:
        json.dump(selection, f, indent=1)
    chosen = selection["chosen"]
    verdict = "meets the criterion" if chosen["met"] else \
        f"the cap: no candidate met the criterion within {protocol.step_cap:,} steps"
    print(f"Wrote {path}. Chosen: E={chosen['epochs']} ({chosen['steps']} steps), {verdict}.")
    print("SOLVER:\n"
          f"  MAX_EPOCH: {chosen['epochs']}\n"
          f"  STEPS: [{chosen['lr_steps'][0]}, {chosen['lr_steps'][1]}]\n"
          f"  WARMUP_ITERS: {chosen['warmup_iters']}\n"
          f"  CHECKPOINT_PERIOD: {chosen['epochs']}\n"
          f"TEST:\n  EVAL_PERIOD: {chosen['epochs']}")
    return 0


if __name__ == "__main__":
    exit_on_sigterm()  # a killed invocation stops its training first
    sys.exit(exit_on_user_error(main))
