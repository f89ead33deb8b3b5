"""The training-numerics fingerprints of a benchmark's methods, kept in a committed file so that a
change of training numerics is seen when it is made, not when a table is rebuilt.

``tests/numerics_reference.json`` holds, for one run of each of the paper's methods on a
dataset folder (seed 0), the numbers its records carry as ``numerics``. The test compares
today's with them; when a change alters them on purpose, the file is rewritten
(``tools/numerics_fingerprint.py --write``) and ``tools/benchmark.py --dry-run`` lists the
records that have gone stale and will be trained again.
"""
from __future__ import annotations

import os
from typing import Dict, List

from .methods import METHODS, runs_for
from .runner import BenchmarkRunner
from .suite import sub_widths

__all__ = ["method_fingerprints", "reference_file"]


def reference_file(repo: str) -> str:
    """Where the committed fingerprints live."""
    return os.path.join(repo, "tests", "numerics_reference.json")


def method_fingerprints(repo: str, dataset: str, net: str = "R18",
                        methods: List[str] = None) -> Dict[str, Dict[str, float]]:
    """``{run name: numbers}`` for the first run of each method (default: the paper's) of
    ``configs/<dataset>`` at seed 0, as that run's record would hold them."""
    config_dir = os.path.join(repo, "configs", dataset)
    widths = sub_widths(config_dir, net, [])
    runs = [runs_for(METHODS[key], widths, net)[0] for key in methods or list(METHODS)]
    needed = [runs_for(METHODS["unified"], widths, net)[-1]]  # the one-to-one old model
    runner = BenchmarkRunner(repo, config_dir, os.path.join(repo, "logs", "fingerprints"),
                             runs + needed, seeds=[0], log=lambda msg: None)
    return {run.name: runner.effective_config(run, 0)["numerics"] for run in runs}
