"""Run records follow the training code: a record whose training-numerics fingerprint differs
from today's is retrained and moved aside, never overwritten; a dry run says what will happen;
what a record cannot vouch for (missing inputs, unnamed data) never matches."""
import os

import pytest
from benchmark_runs import CONFIGS, ROOT, load, matrix_of, runner_of

from sfsc.benchmark.tables import run_inputs
from sfsc.benchmark.tables import suite as suite_module
from sfsc.benchmark.tables.code_state import changed_files, code_state
from sfsc.benchmark.tables.matrices import model_set_matrix
from sfsc.benchmark.tables.methods import METHODS, resolve_methods, runs_for
from sfsc.benchmark.tables.records import record_fingerprint, write_record
from sfsc.benchmark.tables.suite import run_suite
from sfsc.config_checks import ConfigError


def _age(path, factor=1.5, key="numerics", name="step0/norm/ori"):
    """Make a committed record look trained by other training code (``key``: the run's own
    fingerprint, or ``<run>:numerics``: that of the run it needs)."""
    record = load(path)
    record["effective_config"][key][name] *= factor
    record["fingerprint"] = record_fingerprint(record["run"], record["seed"],
                                               record["effective_config"])
    write_record(str(path), record)
    return record


def test_a_record_of_other_training_code_is_retrained_and_moved_aside(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    full = records / "seed0" / "unified_w1.json"
    stale = _age(full)
    _age(records / "seed0" / "bct_w0.25.json", key="unified_w1:numerics")
    plan = {p.run.name: p for p in runner_of(tmp_path / "second", records=records).plan()}
    assert plan["unified_w1"].action == "train"
    assert "its record is stale: numerics: trained by other training code" in \
        plan["unified_w1"].why and "step0/norm/ori" in plan["unified_w1"].why
    # bct_w0.25 needs unified_w1: its own record carries the old model's fingerprint too
    assert plan["bct_w0.25"].action == "train" and "unified_w1:numerics" in plan["bct_w0.25"].why
    assert fake_training == [str(tmp_path / "first" / "seed0" / n)
                             for n in ("unified_w1", "bct_w0.25")]  # the plan trained nothing

    fake_training.clear()
    runner_of(tmp_path / "second", records=records).run_all()
    assert [os.path.basename(c) for c in fake_training] == ["unified_w1", "bct_w0.25"]
    retired = records / "retired" / "seed0" / f"unified_w1.{stale['fingerprint']}.json"
    assert load(retired) == stale  # moved, not rewritten
    fresh = load(full)
    assert fresh["fingerprint"] != stale["fingerprint"]
    assert fresh["effective_config"]["numerics"] == \
        runner_of(tmp_path).effective_config(runner_of(tmp_path).runs[0], 0)["numerics"]


def test_a_run_retired_twice_keeps_both_old_records(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    full = records / "seed0" / "unified_w1.json"
    stale = _age(full)
    retired = records / "retired" / "seed0" / f"unified_w1.{stale['fingerprint']}.json"
    retired.parent.mkdir(parents=True)
    retired.write_text("{}")  # an earlier retirement under the same name
    runner_of(tmp_path / "second", records=records).run_all()
    assert load(retired) == {}
    assert load(retired.with_name(f"unified_w1.{stale['fingerprint']}-2.json")) == stale


def test_a_finished_local_run_replaces_a_stale_record_without_training(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "runs", records=records).run_all()
    stale = _age(records / "seed0" / "unified_w1.json")
    fake_training.clear()
    runner_of(tmp_path / "runs", records=records).run_all()  # the folders hold today's runs
    assert fake_training == []
    assert (records / "retired" / "seed0" / f"unified_w1.{stale['fingerprint']}.json").exists()
    assert load(records / "seed0" / "unified_w1.json")["fingerprint"] != stale["fingerprint"]


def test_numbers_within_the_tolerance_still_match(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    _age(records / "seed0" / "unified_w1.json", factor=1 + 2e-5)  # another CPU's rounding
    fake_training.clear()
    runner_of(tmp_path / "second", records=records).run_all()
    assert fake_training == []


def test_the_dry_run_says_what_it_would_do_and_does_nothing(tmp_path, fake_training, capsys,
                                                           monkeypatch):
    monkeypatch.setattr(suite_module, "model_set_matrix", lambda *a: matrix_of(40))
    output = tmp_path / "benchmarks"
    args = (ROOT, "Synthetic", ["bct"], [0], "R18", str(tmp_path / "runs"), str(output),
            ["SFSC.WIDTHS", "[0.25]"], "command")
    assert run_suite(*args, dry_run=True) is None
    assert fake_training == [] and not output.exists()
    assert "seed 0 bct_w0.25: to train (no record)" in capsys.readouterr().out
    run_suite(*args)
    records = output / "Synthetic" / "runs" / "seed0"
    _age(records / "bct_w0.25.json")
    before = {name: (records / name).read_bytes() for name in os.listdir(records)}
    fake_training.clear()
    capsys.readouterr()
    elsewhere = args[:5] + (str(tmp_path / "another_machine"),) + args[6:]  # no checkpoints
    run_suite(*elsewhere, dry_run=True)
    assert fake_training == []
    assert {name: (records / name).read_bytes() for name in os.listdir(records)} == before
    text = capsys.readouterr().out
    assert "seed 0 bct_w0.25: to train (its record is stale: numerics:" in text
    assert "seed 0 unified_w1: to train (a matrix to evaluate needs its checkpoint" in text
    assert "seed 0 bct matrix: to evaluate" in text
    assert "Dry run: 2 runs, 0 reused, 2 to train, 0 in conflict" in text


@pytest.mark.parametrize("damage", ["no effective config", "another seed"])
def test_a_record_the_runner_cannot_read_as_this_run_is_a_conflict(tmp_path, fake_training,
                                                                   damage):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    path = records / "seed0" / "unified_w1.json"
    record = load(path)
    if damage == "no effective config":  # written by an older version of the runner
        del record["effective_config"]
    else:
        record["seed"] = 1
    write_record(str(path), record)
    plan = {p.run.name: p for p in runner_of(tmp_path / "second", records=records).plan()}
    assert plan["unified_w1"].action == "conflict", plan["unified_w1"]
    assert ("holds no effective config" if damage == "no effective config"
            else "it names unified_w1 seed 1") in plan["unified_w1"].why


def test_code_edited_while_a_benchmark_runs_writes_no_record(tmp_path, fake_training):
    records = tmp_path / "records"
    runner = runner_of(tmp_path / "runs", records=records)
    edited = "projects/SFSC/sfsc/engine/task_step.py"
    assert edited in runner.code
    runner.code[edited] = "0" * 64  # the disk now differs from what the runner imported
    with pytest.raises(RuntimeError, match="training code changed on disk while the benchmark "
                       r"ran \(projects/SFSC/sfsc/engine/task_step.py\)"):
        runner.run_all()
    assert len(fake_training) == 1 and not (records / "seed0" / "unified_w1.json").exists()


def test_the_code_state_sees_an_edit_an_addition_and_a_removal(tmp_path):
    package = tmp_path / "projects" / "SFSC" / "sfsc" / "engine"
    package.mkdir(parents=True)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "train_net.py").write_text("main()\n")
    (package / "step.py").write_text("x = 1\n")
    (package / "loss.py").write_text("y = 2\n")
    before = code_state(str(tmp_path))
    assert set(before) == {"tools/train_net.py", "projects/SFSC/sfsc/engine/step.py",
                           "projects/SFSC/sfsc/engine/loss.py"}
    (package / "step.py").write_text("x = 2\n")
    (package / "new.py").write_text("")
    (package / "loss.py").unlink()
    (tmp_path / "README.md").write_text("docs are not training code")
    assert changed_files(before, code_state(str(tmp_path))) == [
        "projects/SFSC/sfsc/engine/loss.py", "projects/SFSC/sfsc/engine/new.py",
        "projects/SFSC/sfsc/engine/step.py"]


def test_a_record_that_names_no_dataset_matches_no_generated_one(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    path = records / "seed0" / "unified_w1.json"
    record = load(path)
    del record["effective_config"]["dataset/SyntheticReID"]  # written before the entry
    write_record(str(path), record)
    plan = {p.run.name: p for p in runner_of(tmp_path / "second", records=records).plan()}
    assert plan["unified_w1"].action == "conflict"
    assert "dataset/SyntheticReID: (not in the record)" in plan["unified_w1"].why


def test_a_missing_input_file_is_an_error_not_a_checksum(tmp_path):
    runner = runner_of(tmp_path, "SFSC.DENSE_INIT.WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(run_inputs.MissingInputError, match="SFSC.DENSE_INIT.WEIGHTS names .*"
                       "absent.pth, which does not exist"):
        runner.effective_config(runner.runs[0], 0)


def test_the_custom_path_is_hashed_where_training_reads_it(tmp_path, monkeypatch):
    # Training reads SFSC.DATA.CUSTOM_PATH below FastReID's dataset root (FASTREID_DATASETS when
    # fastreid was imported), from the repository, where runs train; "~" is the home folder.
    import fastreid.data.build as data_build

    root, home = tmp_path / "data", tmp_path / "home"
    for folder, content in ((root / "mine", b"at the root"), (home / "mine", b"at home")):
        folder.mkdir(parents=True)
        (folder / "list.csv").write_bytes(content)
    monkeypatch.setattr(data_build, "_root", str(root))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path / "not_what_training_reads"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)

    def entry(path):
        runner = runner_of(tmp_path, "SFSC.DATA.CUSTOM_PATH", path)
        return runner.effective_config(runner.runs[0], 0)["inputs/SFSC.DATA.CUSTOM_PATH"]

    assert entry("mine") == entry(str(root / "mine")) != entry(str(home / "mine"))
    assert entry("~/mine") == entry(str(home / "mine"))
    monkeypatch.setattr(data_build, "_root", "relative_data")  # relative: from the repository
    with pytest.raises(run_inputs.MissingInputError,
                       match=os.path.join(ROOT, "relative_data", "mine")):
        entry("mine")


def test_a_model_set_matrix_keeps_the_checksums_of_the_checkpoints_it_scored(
        tmp_path, fake_training, monkeypatch):
    import sfsc.benchmark.tables.matrices as matrices

    runner = runner_of(tmp_path / "runs", records=tmp_path / "records")
    records = {(r["seed"], r["run"]): r for r in runner.run_all()}
    monkeypatch.setattr(matrices, "load_trained_config", lambda folder: _FakeCfg())
    monkeypatch.setattr(matrices.SFSCTrainer, "build_test_loader", lambda cfg, name: (None, 0))
    monkeypatch.setattr(matrices, "evaluate_model_set",
                        lambda *a, **kw: type("R", (), {"to_json": lambda self: {"mAP": 1}})())
    model_set_matrix(runner, METHODS["bct"], [0.25], 0, records)
    cache = load(tmp_path / "records" / "seed0" / "bct_matrix.json")
    assert cache["checkpoints"] == [run_inputs.file_checksum(
        str(tmp_path / "runs" / "seed0" / name / "model_final.pth"))
        for name in ("bct_w0.25", "unified_w1")]
    assert cache["members"] == [records[(0, n)]["fingerprint"] for n in ("bct_w0.25", "unified_w1")]


class _FakeCfg:
    class DATASETS:
        TESTS = ("SyntheticReID",)

    class TEST:
        METRIC = "cosine"

        class COMPAT:
            CHUNK_SIZE = 16


def test_any_config_of_the_folder_is_a_switchable_method(tmp_path):
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "sfsc_distill_R18.yml").write_text("_BASE_: x.yml\n")
    (method,) = resolve_methods(["sfsc_distill"], str(config_dir))
    assert (method.kind, method.config) == ("switchable", "sfsc_distill")
    (run,) = runs_for(method, [0.25, 0.5])
    assert (run.name, run.config) == ("sfsc_distill", "sfsc_distill_R18.yml")
    with pytest.raises(ConfigError, match="'nothing' is not one of the paper's methods .* "
                       "has no nothing_R18.yml"):
        resolve_methods(["nothing"], str(config_dir))
    assert resolve_methods(["sfsc"], CONFIGS)[0] is METHODS["sfsc"]
    assert "sfsc_distill" not in METHODS  # the paper's table is not extended in passing


def test_records_of_another_folder_are_reused_without_a_copy(tmp_path, fake_training):
    selection = tmp_path / "selection"
    runner_of(tmp_path / "first", records=selection).run_all()
    fake_training.clear()

    def table(*opts):
        runner = runner_of(tmp_path / "second", *opts, records=tmp_path / "table")
        runner.records_from = [str(selection)]
        return runner

    plan = {p.run.name: p for p in table().plan()}
    assert plan["unified_w1"].action == "reuse" and "selection/seed0/unified_w1.json" in \
        plan["unified_w1"].why
    table().run_all()
    assert fake_training == [] and not (tmp_path / "table").exists()  # nothing copied
    # another config: the borrowed records are not of these runs, which train into the table
    table("SOLVER.MAX_EPOCH", "9").run_all()
    assert len(fake_training) == 2 and (tmp_path / "table" / "seed0" / "bct_w0.25.json").exists()
    # the table's own record comes first, even where the other folder has a matching one
    plan = {p.run.name: p for p in table().plan()}
    assert plan["unified_w1"].action == "conflict" and "SOLVER.MAX_EPOCH" in plan["unified_w1"].why
