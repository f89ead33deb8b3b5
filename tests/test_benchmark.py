"""tools/benchmark.py's parts (sfsc.benchmark.tables): the runs each method takes, a resumable
runner (finished runs reused, interrupted or changed ones trained again; committed records reused
on another machine), the paper-layout tables and the suite that ties them together."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from benchmark_runs import CONFIGS, ROOT, load, matrix_of, runner_of

from sfsc.benchmark.tables import run_inputs
from sfsc.benchmark.tables import runner as runner_module
from sfsc.benchmark.tables import suite as suite_module
from sfsc.benchmark.tables.matrices import members_to_evaluate
from sfsc.benchmark.tables.methods import METHODS, benchmark_runs, runs_for
from sfsc.benchmark.tables.records import curves_to_series, thin_curves, write_record
from sfsc.benchmark.tables.report import aggregate, markdown
from sfsc.benchmark.tables.runner import RECORD, BenchmarkRunner, git_commit
from sfsc.benchmark.tables.suite import pooled_machines, run_suite

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


def test_one_to_one_methods_bring_their_old_model_first():
    runs = benchmark_runs([METHODS["bct"], METHODS["asymmetric"], METHODS["unified"]], [0.5])
    assert [r.name for r in runs] == ["unified_w1", "bct_w0.5", "asymmetric_w0.5",
                                      "unified_w0.5"]
    assert [r.name for r in benchmark_runs([METHODS["sfsc"]], [0.5])] == ["sfsc"]


def test_runner_reuses_restarts_and_retrains(tmp_path, fake_training):
    records = runner_of(tmp_path).run_all()
    assert [os.path.basename(c) for c in fake_training] == ["unified_w1", "bct_w0.25"]
    bct = next(r for r in records if r["run"] == "bct_w0.25")
    assert bct["command"][:2] == ["python", "tools/train_net.py"]  # portable record
    assert bct["command"][3] == "configs/Synthetic/bct_R18.yml" and bct["seed"] == 0
    assert f"{tmp_path}/seed0/unified_w1/model_final.pth" in bct["overrides"]

    fake_training.clear()
    runner_of(tmp_path).run_all()
    assert fake_training == []  # every run finished: reused

    interrupted = tmp_path / "seed0" / "bct_w0.25"
    os.remove(interrupted / RECORD)
    (interrupted / "partial.txt").write_text("left by a killed run")
    runner_of(tmp_path).run_all()
    assert fake_training == [str(interrupted)] and not (interrupted / "partial.txt").exists()

    fake_training.clear()
    runner_of(tmp_path, "SOLVER.MAX_EPOCH", "9").run_all()  # another config: trained again
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
        runner_of(tmp_path).run_all()
    assert not os.path.exists(tmp_path / "seed0" / "unified_w1" / RECORD)


def test_the_report_says_which_machines_it_pooled():
    records = [{"machine": {"cpu": "AMD EPYC", "device": "cpu"}}] * 3 + [
        {"machine": {"cpu": "Intel Xeon", "device": "cpu"}}, {},
        {"machine": {"cpu": "AMD EPYC", "device": "NVIDIA H200"}}]
    assert pooled_machines(records) == ("cpu: AMD EPYC (3 runs), CPU not recorded (1 run), "
                                        "Intel Xeon (1 run); gpu: NVIDIA H200 (1 run)")


def test_tables_report_mean_and_spread():
    results = aggregate({"unified": {0: matrix_of(30), 1: matrix_of(32)},
                         "sfsc": {0: matrix_of(40), 1: matrix_of(44)},
                         "sfsc_wo_loss": {0: matrix_of(20), 1: matrix_of(20)}})
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


def test_a_candidate_method_is_reported_after_the_papers_as_switchable():
    results = aggregate({"sfsc_distill": {0: matrix_of(50)}, "sfsc": {0: matrix_of(40)}})
    assert results["sfsc_distill"]["title"] == "sfsc_distill" and "sfsc_distill" not in METHODS
    text = markdown(results, "Synthetic")
    # switchable: its row of Table 3 queries the full model's gallery, below the paper's rows
    candidate = "| sfsc_distill | 60.00 | 60.00 | 61.00 | 61.00 |"
    assert text.index("| SFSC | 50.00") < text.index(candidate)


def test_a_record_names_the_vector_instructions_its_cpu_kernels_used():
    # Two CPUs sold under one name can run other kernels (AVX2 / AVX-512), which round
    # differently: the record says which, as torch was told to use them.
    code = ("import json; from sfsc.benchmark.tables.run_inputs import machine; "
            "print(json.dumps(machine('cpu')))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}  # every CPU can run these
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    assert json.loads(out)["cpu_capability"] == "DEFAULT"


def test_committed_records_are_reused_on_a_new_machine(tmp_path, fake_training):
    records = tmp_path / "benchmarks" / "runs"
    runner_of(tmp_path / "first", records=records).run_all()
    assert len(fake_training) == 2
    bct = load(records / "seed0" / "bct_w0.25.json")
    assert bct["run"] == "bct_w0.25" and bct["seed"] == 0 and bct["wall_time_s"] >= 0
    assert bct["config"] == "configs/Synthetic/bct_R18.yml"
    assert set(bct["config_files"]) == {"configs/Synthetic/bct_R18.yml",
                                        "configs/Synthetic/Base-Synthetic.yml",
                                        "configs/Base-SFSC.yml"}
    effective = bct["effective_config"]
    assert "OUTPUT_DIR" not in effective and effective["SEED"] == 0
    assert effective["SFSC.OLD_MODEL.WEIGHTS"] == "{unified_w1}/model_final.pth"
    assert effective["unified_w1:SFSC.TRAIN_WIDTH"] == 1.0  # the old model's config
    assert bct["compatibility"]["mAP"] == [[40]] and bct["final_metrics"]["mAP"] == 40
    assert bct["curves"]["iterations"] == list(range(30))
    assert bct["curves"]["series"]["loss_cls"][-1] == pytest.approx(2.1)
    assert "time" not in bct["curves"]["series"]  # machine-dependent

    # Another machine: no runs root, the records only, trained at another commit.
    bct["git_commit"] = "0" * 40
    write_record(str(records / "seed0" / "bct_w0.25.json"), bct)
    fake_training.clear()
    reused = runner_of(tmp_path / "second", records=records).run_all()
    assert fake_training == [] and not (tmp_path / "second").exists()
    assert [r["fingerprint"] for r in reused] == [
        load(records / "seed0" / f"{n}.json")["fingerprint"] for n in ("unified_w1",
                                                                         "bct_w0.25")]


def test_runs_finished_before_records_were_kept_become_records(tmp_path, fake_training):
    runner_of(tmp_path / "runs").run_all()
    fake_training.clear()
    runner_of(tmp_path / "runs", records=tmp_path / "records").run_all()
    assert fake_training == []
    assert load(tmp_path / "records" / "seed0" / "unified_w1.json")["curves"]


def test_missing_old_model_checkpoint_is_trained_again(tmp_path, fake_training):
    """Records of both runs committed, the one-to-one run's removed: on a new machine it needs
    the frozen full model's checkpoint, which only a retrain of that model provides."""
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    os.remove(records / "seed0" / "bct_w0.25.json")
    full = records / "seed0" / "unified_w1.json"
    committed = load(full)
    committed["wall_time_s"] = 1234.5  # marks the committed record
    write_record(str(full), committed)
    fake_training.clear()
    log = []
    runner = runner_of(tmp_path / "second", records=records, log=log)
    runner.run_all()
    assert fake_training == [runner.output_dir(0, "unified_w1"), runner.output_dir(0, "bct_w0.25")]
    assert any("unified_w1" in line and "needs its checkpoint" in line for line in log)
    # Trained for its checkpoint only: the record in use (and the matrices cached from its
    # fingerprint) stays the committed one.
    assert load(full) == committed

    fake_training.clear()  # a matrix to evaluate needs checkpoints too; here they are
    runner.run_all(need_checkpoints={(0, "unified_w1"), (0, "bct_w0.25")})
    assert fake_training == []
    runner = runner_of(tmp_path / "third", records=records)
    runner.run_all(need_checkpoints={(0, "unified_w1")})
    assert fake_training == [runner.output_dir(0, "unified_w1")]


def test_the_testbed_without_its_weights_stops_saying_how_to_restore_them(tmp_path):
    repo = tmp_path / "clone"  # a checkout without benchmarks/testbed/weights
    shutil.copytree(os.path.join(ROOT, "configs"), repo / "configs")
    shutil.copytree(os.path.join(ROOT, "tools"), repo / "tools")
    proc = subprocess.run([sys.executable, str(repo / "tools" / "benchmark.py"), "--dataset",
                           "SyntheticHard", "--seeds", "0", "--methods", "unified",
                           "--runs-root", str(tmp_path / "logs"), "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "error: MODEL.BACKBONE.PRETRAIN_PATH" in proc.stderr
    assert "git checkout -- " in proc.stderr and "resnet18-2affeffe.pth" in proc.stderr
    assert not (tmp_path / "logs").exists()


def test_run_records_and_reports_written_as_a_benchmark_goes_do_not_make_the_commit_dirty(
        tmp_path, fake_training):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    out = tmp_path / "benchmarks" / "Synthetic"
    (out / "runs").mkdir(parents=True)
    for name in ("code.py", "benchmarks/Synthetic/runs/a.json", "benchmarks/Synthetic/results.md"):
        (tmp_path / name).write_text("1")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clean = git_commit(str(tmp_path), str(out))
    assert re.fullmatch("[0-9a-f]{40}", clean)
    (out / "runs" / "a.json").write_text("2")
    (out / "results.md").write_text("2")  # the previous invocation's report
    assert git_commit(str(tmp_path), str(out)) == clean
    assert git_commit(str(tmp_path)) == clean + "-dirty"
    runner = BenchmarkRunner(str(tmp_path), os.path.join(CONFIGS, "Synthetic"),
                             str(tmp_path / "logs"), [], [0], records_dir=str(out / "runs"))
    assert runner.commit == clean
    # a benchmark of another dataset queued before this one left its records
    (tmp_path / "benchmarks" / "Synthetic" / "runs" / "a.json").unlink()
    (tmp_path / "benchmarks" / "Other" / "runs").mkdir(parents=True)
    other = BenchmarkRunner(str(tmp_path), os.path.join(CONFIGS, "Synthetic"),
                            str(tmp_path / "logs"), [], [0],
                            records_dir=str(tmp_path / "benchmarks" / "Other" / "runs"))
    assert other.commit == clean
    (tmp_path / "code.py").write_text("2")
    assert git_commit(str(tmp_path), str(out)) == clean + "-dirty"


def test_a_matrix_is_evaluated_only_without_a_cache_of_its_members(tmp_path, fake_training):
    records = tmp_path / "records"
    runner = runner_of(tmp_path / "runs", records=records)
    runner.run_all()
    bct = METHODS["bct"]
    members = {(0, "bct_w0.25"), (0, "unified_w1")}
    assert members_to_evaluate(runner, bct, [0.25], [0]) == members
    stamps = [load(records / "seed0" / f"{n}.json")["fingerprint"]
              for n in ("bct_w0.25", "unified_w1")]  # matrix order: sub-widths, then full
    write_record(str(records / "seed0" / "bct_matrix.json"), {"members": stamps, "matrix": {}})
    assert members_to_evaluate(runner, bct, [0.25], [0]) == set()
    changed = runner_of(tmp_path / "runs", "SOLVER.MAX_EPOCH", "9", records=records)
    assert members_to_evaluate(changed, bct, [0.25], [0]) == members


def test_curves_are_thinned_evenly_keeping_both_ends():
    rows = {it: {"loss": float(it)} for it in range(1000)}
    rows[999]["late"] = 1.0
    curves = thin_curves(rows, max_points=250)
    its = curves["iterations"]
    assert len(its) == 250 and its[0] == 0 and its[-1] == 999
    gaps = [b - a for a, b in zip(its, its[1:])]
    assert min(gaps) >= 4 and max(gaps) <= 5  # 999 / 249 = 4.01
    assert curves["series"]["loss"] == [float(it) for it in its]
    series = curves_to_series(curves)
    assert series["late"] == [(999, 1.0)] and series["loss"][1] == (its[1], float(its[1]))


def test_a_seeds_model_set_matrix_is_evaluated_before_the_next_seed_trains(
        tmp_path, fake_training, monkeypatch):
    """While its checkpoints are on this machine: a table stopped during seed 1 and resumed on
    another machine then has seed 0's matrix cached and retrains none of its models."""
    evaluated = []

    def model_set(runner, method, widths, seed, records):
        evaluated.append((method.key, seed, len(fake_training)))
        return matrix_of(30 + seed)

    monkeypatch.setattr(suite_module, "model_set_matrix", model_set)
    run_suite(ROOT, "Synthetic", ["unified"], [0, 1], "R18", str(tmp_path / "logs"),
              str(tmp_path / "bench"), ["SFSC.WIDTHS", "[0.25]"], "python tools/x.py")
    # Seed 0's two runs, its matrix, seed 1's two runs, its matrix; then the report's reads.
    assert evaluated[:2] == [("unified", 0, 2), ("unified", 1, 4)]


def test_the_suite_writes_the_report_from_the_runs_matrices(tmp_path, fake_training,
                                                             monkeypatch):
    values = {("seed0", "sfsc"): 40, ("seed1", "sfsc"): 44, ("seed0", "bct_s"): 20,
              ("seed1", "bct_s"): 24}

    def train(command, stdout=None, cwd=None):  # fake_training, other matrices
        code = fake_call(command, stdout, cwd)
        out = command[command.index("OUTPUT_DIR") + 1]
        with open(os.path.join(out, "compatibility.json"), "w") as f:
            json.dump(matrix_of(values[tuple(out.split(os.sep)[-2:])]), f)
        return code

    fake_call = runner_module.run_to_end
    monkeypatch.setattr(runner_module, "run_to_end", train)
    out = run_suite(ROOT, "Synthetic", ["sfsc", "bct_s"], [0, 1], "R18", str(tmp_path / "logs"),
                    str(tmp_path / "bench"), ["SFSC.WIDTHS", "[0.25]"], "python tools/x.py")
    assert out == str(tmp_path / "bench" / "Synthetic")
    assert sorted(os.path.basename(c) for c in fake_training) == ["bct_s"] * 2 + ["sfsc"] * 2
    text = (tmp_path / "bench" / "Synthetic" / "results.md").read_text()
    assert "Command: `python tools/x.py`" in text and "Seeds [0, 1]" in text
    cpu = run_inputs.machine("cpu")["cpu"]
    assert f"on cpu: {cpu} (4 runs)." in text  # what the table pools
    assert "| SFSC | 52.00 ± 2.83 | 52.00 ± 2.83 |" in text  # seeds 0, 1 of sfsc: 50 and 54
    results = load(os.path.join(out, "results.json"))
    assert results["widths"] == [0.25] and results["methods"]["bct_s"]["mAP"]["mean"][0][1] == 32
    assert {r["run"] for r in results["runs"]} == {"sfsc", "bct_s"}
    assert not {"effective_config", "compatibility", "curves"} & set(results["runs"][0])
    assert sorted(os.listdir(os.path.join(out, "runs"))) == ["seed0", "seed1"]
    assert os.path.exists(os.path.join(out, "curves", "sfsc_seed1.png"))
