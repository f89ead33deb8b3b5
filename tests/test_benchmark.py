"""tools/benchmark.py's parts: the runs each method takes, a resumable runner (finished runs
reused, interrupted or changed ones trained again) and the paper-layout tables."""
import json
import os

import pytest

from sfsc.benchmark import runner as runner_module
from sfsc.benchmark.methods import METHODS, runs_for
from sfsc.benchmark.report import aggregate, markdown
from sfsc.benchmark.runner import RECORD, BenchmarkRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTHS = (0.25, 0.5)


def test_runs_of_each_method_kind():
    unified = runs_for(METHODS["unified"], WIDTHS)
    assert [r.name for r in unified] == ["unified_w0.25", "unified_w0.5", "unified_w1"]
    assert unified[0].overrides == ("SFSC.TRAIN_WIDTH", "0.25")
    bct = runs_for(METHODS["bct"], WIDTHS)
    assert [r.name for r in bct] == ["bct_w0.25", "bct_w0.5"]
    assert all(r.needs == ("unified_w1",) for r in bct)
    assert "{unified_w1}/model_final.pth" in bct[0].overrides
    (sfsc,) = runs_for(METHODS["sfsc"], WIDTHS)
    assert (sfsc.config, sfsc.overrides) == ("sfsc_R18.yml", ("SFSC.WIDTHS", "[0.25,0.5]"))


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces the train_net subprocess: records the command, leaves a file in OUTPUT_DIR."""
    class Calls(list):
        exit_code = 0

    calls = Calls()

    def call(command, stdout=None, stderr=None, cwd=None):
        out = command[command.index("OUTPUT_DIR") + 1]
        calls.append(out)
        with open(os.path.join(out, "model_final.pth"), "w") as f:
            f.write("weights")
        return calls.exit_code

    monkeypatch.setattr(runner_module.subprocess, "call", call)
    return calls


def _runner(tmp_path, *opts):
    runs = runs_for(METHODS["unified"], [0.25])[-1:] + runs_for(METHODS["bct"], [0.25])
    return BenchmarkRunner(ROOT, os.path.join(ROOT, "configs", "Synthetic"), str(tmp_path),
                           runs, seeds=[0], extra_opts=opts, log=lambda msg: None)


def test_runner_reuses_restarts_and_retrains(tmp_path, fake_training):
    records = _runner(tmp_path).run_all()
    assert [os.path.basename(c) for c in fake_training] == ["unified_w1", "bct_w0.25"]
    bct = next(r for r in records if r["run"] == "bct_w0.25")
    assert bct["command"][:2] == ["python", "tools/train_net.py"]  # portable record
    assert bct["command"][3] == "configs/Synthetic/bct_R18.yml" and bct["seed"] == 0
    assert f"{tmp_path}/seed0/unified_w1/model_final.pth" in bct["overrides"]

    fake_training.clear()
    _runner(tmp_path).run_all()
    assert fake_training == []  # every run finished: reused

    interrupted = tmp_path / "seed0" / "bct_w0.25"
    os.remove(interrupted / RECORD)
    (interrupted / "partial.txt").write_text("left by a killed run")
    _runner(tmp_path).run_all()
    assert fake_training == [str(interrupted)] and not (interrupted / "partial.txt").exists()

    fake_training.clear()
    _runner(tmp_path, "SOLVER.MAX_EPOCH", "9").run_all()  # another config: trained again
    assert len(fake_training) == 2


def test_records_name_paths_inside_the_repository_relative_to_it(tmp_path, fake_training):
    """A runs-root inside the repository: the record's overrides read the same on any machine."""
    runs = runs_for(METHODS["unified"], [0.25])[-1:] + runs_for(METHODS["bct"], [0.25])
    runner = BenchmarkRunner(str(tmp_path), os.path.join(ROOT, "configs", "Synthetic"),
                             str(tmp_path / "logs"), runs, seeds=[0], log=lambda msg: None)
    bct = next(r for r in runner.run_all() if r["run"] == "bct_w0.25")
    weights = os.path.join("logs", "seed0", "unified_w1", "model_final.pth")
    assert weights in bct["overrides"] and not any(str(tmp_path) in o for o in bct["overrides"])


def test_failed_run_is_reported(tmp_path, fake_training):
    fake_training.exit_code = 3
    with pytest.raises(RuntimeError, match="unified_w1 .seed 0. failed with exit code 3"):
        _runner(tmp_path).run_all()
    assert not os.path.exists(tmp_path / "seed0" / "unified_w1" / RECORD)


def _matrix(value, widths=(0.25, 1.0)):
    n = len(widths)
    rows = [[value + i + 10 * j for j in range(n)] for i in range(n)]
    return {"widths": list(widths), "mAP": rows, "R1": rows, "mINP": rows}


def test_tables_report_mean_and_spread():
    results = aggregate({"unified": {0: _matrix(30), 1: _matrix(32)},
                         "sfsc": {0: _matrix(40), 1: _matrix(44)},
                         "sfsc_wo_loss": {0: _matrix(20), 1: _matrix(20)}})
    assert results["sfsc"]["mAP"]["mean"][0][1] == 52.0
    assert results["sfsc"]["mAP"]["std"][0][1] == pytest.approx(2.83, abs=0.01)
    text = markdown(results, "Synthetic", ["header line"])
    assert "| φ_0.25 | 31.00 ± 1.41 | - |" in text  # a unified model shows its diagonal only
    assert "| φ_0.25 | 42.00 ± 2.83 | 52.00 ± 2.83 |" in text
    # Table 3: the unified row is its diagonal, the switchable rows query the full gallery.
    assert "| Unified Model | 31.00 ± 1.41 | 31.00 ± 1.41 | 42.00 ± 1.41 | 42.00 ± 1.41 |" in text
    assert "| SFSC | 52.00 ± 2.83 | 52.00 ± 2.83 | 53.00 ± 2.83 | 53.00 ± 2.83 |" in text
    assert "Table 6 layout (ablation)" in text and "| w/o our loss | 30.00 ± 0.00 |" in text
    assert json.loads(json.dumps(results)) == results
