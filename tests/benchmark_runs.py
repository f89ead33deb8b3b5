"""The benchmark runner's test harness: training replaced by a fake that leaves what a
finished run leaves, and a runner over one full model and one one-to-one run."""
import json
import os

import pytest

from sfsc.benchmark.tables import runner as runner_module
from sfsc.benchmark.tables.methods import METHODS, runs_for
from sfsc.benchmark.tables.runner import BenchmarkRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces the train_net subprocess: records the command, leaves a checkpoint, 30
    iterations of metrics.json and a compatibility.json in OUTPUT_DIR."""
    class Calls(list):
        exit_code = 0

    calls = Calls()

    def call(command, stdout=None, cwd=None):
        out = command[command.index("OUTPUT_DIR") + 1]
        calls.append(out)
        with open(os.path.join(out, "model_final.pth"), "w") as f:
            f.write("weights")
        with open(os.path.join(out, "metrics.json"), "w") as f:
            for it in range(30):
                f.write(json.dumps({"iteration": it, "loss_cls": 5.0 - it / 10, "time": 0.3,
                                    "grad_norm/ori": 1.0 + it}) + "\n")
        with open(os.path.join(out, "compatibility.json"), "w") as f:
            json.dump(matrix_of(40, widths=(1.0,)), f)
        return calls.exit_code

    monkeypatch.setattr(runner_module, "run_to_end", call)
    return calls


def runner_of(tmp_path, *opts, records=None, configs=CONFIGS, log=None):
    """A runner of unified_w1 and bct_w0.25 (which needs it) on the Synthetic configs."""
    runs = runs_for(METHODS["unified"], [0.25])[-1:] + runs_for(METHODS["bct"], [0.25])
    return BenchmarkRunner(ROOT, os.path.join(configs, "Synthetic"), str(tmp_path),
                           runs, seeds=[0], extra_opts=opts,
                           log=log.append if log is not None else lambda msg: None,
                           records_dir=None if records is None else str(records))


def matrix_of(value, widths=(0.25, 1.0)):
    """A compatibility.json dict whose cells grow from ``value`` (+1 a row, +10 a column)."""
    n = len(widths)
    rows = [[value + i + 10 * j for j in range(n)] for i in range(n)]
    return {"widths": list(widths), "mAP": rows, "R1": rows, "mINP": rows}


def load(path):
    """A JSON file's content."""
    with open(path) as f:
        return json.load(f)
