"""When a committed run record stands for a run: the same config, the same inputs by content
(weights, data), the same device and precision; what a key added since meant; and that a
record is never replaced by another run's."""
import json
import os
import shutil

import pytest
import torch
from benchmark_runs import ROOT, load, runner_of

from sfsc.benchmark.tables import run_inputs
from sfsc.benchmark.tables.plan import RecordConflictError
from sfsc.benchmark.tables.records import write_record
from sfsc.benchmark.tables.runner import RECORD
from sfsc.data import synthetic


def _refused(runner, *expected):
    """The runner stops before training, naming each expected text; returns its message."""
    with pytest.raises(RecordConflictError) as info:
        runner.run_all()
    message = str(info.value)
    assert "never replaced" in message and "git rm" in message and "--output" in message
    for text in expected:
        assert text in message, message
    return message


def _bytes(folder):
    return {name: (folder / "seed0" / name).read_bytes()
            for name in sorted(os.listdir(folder / "seed0"))}


def test_a_run_with_other_inputs_is_refused_and_the_record_kept(tmp_path, fake_training):
    records = tmp_path / "records"
    runner_of(tmp_path / "first", records=records).run_all()
    before = _bytes(records)
    fake_training.clear()
    _refused(runner_of(tmp_path / "second", "SOLVER.MAX_EPOCH", "9", records=records),
             "unified_w1.json: SOLVER.MAX_EPOCH", "bct_w0.25.json")
    assert fake_training == [] and _bytes(records) == before
    assert not (tmp_path / "second").exists()

    for name in os.listdir(records / "seed0"):  # retired: git rm
        os.remove(records / "seed0" / name)
    runner_of(tmp_path / "second", "SOLVER.MAX_EPOCH", "9", records=records).run_all()
    assert len(fake_training) == 2
    assert load(records / "seed0" / "bct_w0.25.json")["effective_config"][
        "SOLVER.MAX_EPOCH"] == 9

    # A changed config file of the old model: the one-to-one run is another experiment too.
    configs = tmp_path / "configs"
    shutil.copytree(os.path.join(ROOT, "configs"), configs)
    with open(configs / "Synthetic" / "unified_R18.yml", "a") as f:
        f.write("\nSOLVER:\n  BASE_LR: 0.000123\n")
    _refused(runner_of(tmp_path / "third", "SOLVER.MAX_EPOCH", "9", records=records,
                       configs=str(configs)), "SOLVER.BASE_LR", "unified_w1:SOLVER.BASE_LR")


def test_a_key_added_since_the_record_matches_only_what_it_meant_then(tmp_path, fake_training):
    """SFSC.EVIDENTIAL.KL_NORM came after records: a record without it summed the KL, so it
    is not a run of today's default ("batch"), only of "sum"."""
    records = tmp_path / "records"
    opts = ("SFSC.EVIDENTIAL.KL_NORM", "sum")
    runner_of(tmp_path / "first", *opts, records=records).run_all()
    path = records / "seed0" / "unified_w1.json"
    record = load(path)
    del record["effective_config"]["SFSC.EVIDENTIAL.KL_NORM"]  # as written before the key
    write_record(str(path), record)
    fake_training.clear()
    runner_of(tmp_path / "second", *opts, records=records).run_all()
    assert fake_training == []
    message = _refused(runner_of(tmp_path / "third", records=records),
                       "SFSC.EVIDENTIAL.KL_NORM: (not in the record, meaning 'sum') -> 'batch'")
    assert "unified_w1:SFSC.EVIDENTIAL.KL_NORM" not in message  # bct's own record has it

    # A key whose earlier meaning nobody declared matches nothing, not even today's default.
    del record["effective_config"]["SFSC.EVIDENTIAL.PRIOR"]
    write_record(str(path), record)
    _refused(runner_of(tmp_path / "fourth", *opts, records=records),
             "SFSC.EVIDENTIAL.PRIOR: (not in the record) ->")
    assert fake_training == []


def test_a_local_run_folder_follows_the_same_rule(tmp_path, fake_training):
    """An unfinished benchmark's own folder: a key added since at what it meant is reused,
    another value trains again (local folders are scratch, not records)."""
    opts = ("SFSC.EVIDENTIAL.KL_NORM", "sum")
    runner_of(tmp_path, *opts).run_all()
    path = tmp_path / "seed0" / "unified_w1" / RECORD
    local = load(path)
    del local["effective_config"]["SFSC.EVIDENTIAL.KL_NORM"]
    write_record(str(path), local)
    fake_training.clear()
    runner_of(tmp_path, *opts).run_all()
    assert fake_training == []
    runner_of(tmp_path).run_all()
    assert [os.path.basename(c) for c in fake_training] == ["unified_w1", "bct_w0.25"]


def test_weights_and_data_are_matched_by_content_not_by_path(tmp_path, fake_training,
                                                            monkeypatch):
    weights = tmp_path / "dense.pth"
    weights.write_bytes(b"first weights")
    records = tmp_path / "records"
    opts = ("SFSC.DENSE_INIT.WEIGHTS", str(weights))
    runner_of(tmp_path / "first", *opts, records=records).run_all()
    entry = load(records / "seed0" / "unified_w1.json")["effective_config"]
    assert entry["inputs/SFSC.DENSE_INIT.WEIGHTS"] == run_inputs.file_checksum(str(weights))
    assert entry["dataset/SyntheticReID"]["version"] == synthetic.GENERATOR_VERSION
    assert entry["dataset/SyntheticReID"]["params"]["num_train_ids"] == 256

    moved = tmp_path / "elsewhere.pth"  # another location, the same file: the same run
    shutil.copy(weights, moved)
    fake_training.clear()
    runner_of(tmp_path / "second", "SFSC.DENSE_INIT.WEIGHTS", str(moved),
              records=records).run_all()
    assert fake_training == []
    moved.write_bytes(b"other weights")
    _refused(runner_of(tmp_path / "third", "SFSC.DENSE_INIT.WEIGHTS", str(moved),
                       records=records), "inputs/SFSC.DENSE_INIT.WEIGHTS")

    # Another generator version renders other images: the records are of other data.
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    _refused(runner_of(tmp_path / "fourth", *opts, records=records), "dataset/SyntheticReID")
    assert fake_training == []


def test_a_pretraining_with_other_weights_is_refused(tmp_path, fake_training):
    """A tools/pretrain.py folder is the same path on every machine, its weights are not."""
    folder = tmp_path / "pretrained"
    folder.mkdir()

    def weights(name):
        (folder / name).write_bytes(b"weights")
        (folder / "manifest.json").write_text(json.dumps({"weights": name}))

    weights("resnet18-a.pth")
    opts = ("MODEL.BACKBONE.PRETRAIN", "True", "MODEL.BACKBONE.PRETRAIN_PATH", str(folder))
    records = tmp_path / "records"
    runner_of(tmp_path / "first", *opts, records=records).run_all()
    bct = load(records / "seed0" / "bct_w0.25.json")["effective_config"]
    assert bct["pretrained_weights"] == bct["unified_w1:pretrained_weights"] == \
        f"resnet18-a.pth@sha256:{run_inputs.file_checksum(str(folder / 'resnet18-a.pth'))}"
    fake_training.clear()
    runner_of(tmp_path / "second", *opts, records=records).run_all()
    assert fake_training == []
    weights("resnet18-b.pth")  # the same pretraining on another CPU
    _refused(runner_of(tmp_path / "third", *opts, records=records),
             "pretrained_weights: 'resnet18-a.pth@sha256:")
    runner_of(tmp_path / "third", *opts, records=tmp_path / "other").run_all()
    assert [os.path.basename(c) for c in fake_training] == ["unified_w1", "bct_w0.25"]


def test_records_name_the_machine_and_keep_gpu_runs_beside_cpu_ones(tmp_path, fake_training,
                                                                    monkeypatch):
    records = tmp_path / "records"
    amp = ("SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "float16")
    runner = runner_of(tmp_path / "cpu", *amp, records=records)
    assert runner.device == "cpu"
    runner.run_all()
    cpu = load(records / "seed0" / "unified_w1.json")
    assert cpu["effective_config"]["device"] == "cpu"
    assert cpu["effective_config"]["precision"] == "fp32"  # float16 autocast needs CUDA
    assert cpu["effective_config"]["MODEL.DEVICE"] == "cuda"  # what the config asked for
    assert cpu["machine"]["device"] == "cpu" and cpu["machine"]["cpu"]
    assert cpu["machine"]["torch"] == torch.__version__
    before = _bytes(records)

    # A record from before the device entries was trained on the CPU in fp32.
    legacy = dict(cpu, effective_config={k: v for k, v in cpu["effective_config"].items()
                                         if k not in ("device", "precision")})
    write_record(str(records / "seed0" / "unified_w1.json"), legacy)
    fake_training.clear()
    runner_of(tmp_path / "cpu2", *amp, records=records).run_all()
    assert fake_training == []
    write_record(str(records / "seed0" / "unified_w1.json"), cpu)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    gpu = runner_of(tmp_path / "gpu", *amp, records=records)
    assert gpu.device == "cuda" and gpu.record_path(0, "x").endswith("seed0/x.cuda.json")
    gpu.run_all()
    assert len(fake_training) == 2  # the CPU records are not GPU runs
    assert {k: v for k, v in _bytes(records).items() if k in before} == before
    record = load(records / "seed0" / "unified_w1.cuda.json")
    assert record["effective_config"]["device"] == "cuda"
    assert record["effective_config"]["precision"] == "float16"
    assert record["machine"]["device"] == "Test GPU"
