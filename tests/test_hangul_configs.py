"""configs/HangulReID: every method of the paper's table, each identical to its
configs/SyntheticHardLong twin but for the data set, its input and the schedule; the schedule
is a candidate of benchmarks/HangulReID/PROTOCOL.md, whose table the selection tool runs."""
import importlib.util
import json
import os
import re

from test_configs import _merged

from fastreid.data.datasets import DATASET_REGISTRY
from sfsc.benchmark.studies import schedule_selection
from sfsc.benchmark.studies.schedule_selection import HANGUL, PROTOCOLS, Schedule
from sfsc.benchmark.tables.records import flatten
from sfsc.data import HANGUL_REID
from sfsc.data.hangul_layout import plan_glyph_dataset
from sfsc.engine.defaults import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANGUL_DIR = os.path.join(ROOT, "configs", "HangulReID")
TESTBED_DIR = os.path.join(ROOT, "configs", "SyntheticHardLong")
PROTOCOL = os.path.join(ROOT, "benchmarks", "HangulReID", "PROTOCOL.md")
SHIPPED = "benchmarks/testbed/weights/resnet18-2affeffe.pth"
SCHEDULE_KEYS = {"SOLVER.MAX_EPOCH", "SOLVER.STEPS", "SOLVER.WARMUP_ITERS",
                 "SOLVER.CHECKPOINT_PERIOD", "TEST.EVAL_PERIOD"}
# What HangulReID changes of the testbed: its data, the generated size, no mirroring (a
# mirrored syllable is no image of it), the schedule, where runs write.
ALLOWED = SCHEDULE_KEYS | {"DATASETS.NAMES", "DATASETS.TESTS", "INPUT.SIZE_TRAIN",
                           "INPUT.SIZE_TEST", "INPUT.FLIP.ENABLED", "OUTPUT_DIR",
                           "SFSC.OLD_MODEL.WEIGHTS"}
# The paper's table (Tables 2, 3 and 6) and the loss as printed.
METHODS = sorted(f"{m}_R18.yml" for m in (
    "unified", "bct", "asymmetric", "bct_s", "asymmetric_s", "sfsc", "sfsc_paper", "sfsc_wo_loss",
    "sfsc_wo_aggregation"))


def _steps_per_epoch() -> int:
    """FastReID's iterations an epoch: training images // batch; the layout alone decides the
    count (not which characters the installed fonts draw), so any character list will do."""
    plan = plan_glyph_dataset(HANGUL_REID, list(range(0xAC00, 0xAC00 + 2000)), 0)
    return plan.counts()["bounding_box_train"] // 64


def test_every_method_of_the_papers_table_with_the_testbeds_settings():
    assert sorted(n for n in os.listdir(HANGUL_DIR) if not n.startswith("Base-")) == METHODS
    for name in METHODS:
        old = flatten(_merged(os.path.join(TESTBED_DIR, name)))
        new = flatten(_merged(os.path.join(HANGUL_DIR, name)))
        changed = {k for k in old if old[k] != new[k]}
        assert changed <= ALLOWED, (name, changed - ALLOWED)
        assert new["DATASETS.NAMES"] == new["DATASETS.TESTS"] == ["HangulReID"], name
        assert new["OUTPUT_DIR"].startswith("logs/hangul_reid/"), name
        if new["SFSC.OLD_MODEL.WEIGHTS"]:
            assert new["SFSC.OLD_MODEL.WEIGHTS"] == \
                "logs/hangul_reid/unified_R18_w1.0/model_final.pth", name


def test_the_base_fine_tunes_the_shipped_weights_on_the_generated_images():
    cfg = _merged(os.path.join(HANGUL_DIR, "Base-HangulReID.yml"))
    check_config(cfg)
    assert DATASET_REGISTRY.get("HangulReID") is not None
    assert cfg.MODEL.BACKBONE.PRETRAIN and cfg.MODEL.BACKBONE.PRETRAIN_PATH == SHIPPED
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.OPT, cfg.SOLVER.IMS_PER_BATCH) == (0.00035, "Adam", 64)
    # The input is the generated size: no resampling between the generator and the network.
    assert list(cfg.INPUT.SIZE_TRAIN) == list(cfg.INPUT.SIZE_TEST) == list(HANGUL_REID.image_size)
    assert not cfg.INPUT.FLIP.ENABLED and cfg.INPUT.PADDING.ENABLED
    # Its schedule: the selection's choice once committed, the shortest candidate before.
    selection = os.path.join(ROOT, "benchmarks", "HangulReID", "selection", "selection.json")
    if os.path.exists(selection):
        with open(selection) as f:
            epochs = json.load(f)["chosen"]["epochs"]
    else:
        epochs = HANGUL.candidates[0].epochs
    expected = next(c for c in HANGUL.candidates if c.epochs == epochs).overrides()
    flat = flatten(cfg)
    assert {k: str(flat[k]).replace(" ", "") for k in expected[::2]} == \
        dict(zip(expected[::2], expected[1::2]))


def test_the_protocols_candidates_follow_the_testbeds_rules():
    spe = _steps_per_epoch()
    assert spe == 199
    with open(PROTOCOL) as f:
        rows = re.findall(r"^\| (\d+) \| ([\d,]+) \| \[(\d+), (\d+)\] \| (\d+) \|$", f.read(), re.M)
    table = [(int(e), int(s.replace(",", "")), (int(a), int(b)), int(w)) for e, s, a, b, w in rows]
    # The bag of tricks' shape by the testbed's rules, for the protocol's epochs.
    by_rule = [(e, e * spe, (round(e / 3), round(3 * e / 4)), spe * max(1, round(e / 12)))
               for e in (3, 4, 5, 6, 7)]
    assert table == by_rule
    assert [(c.epochs, c.lr_steps, c.warmup_iters) for c in HANGUL.candidates] == \
        [(e, lr, w) for e, _, lr, w in by_rule]
    assert by_rule[-1][1] <= HANGUL.step_cap < by_rule[-1][1] + spe  # the cap: the longest
    assert PROTOCOLS["HangulReID"] is HANGUL and PROTOCOLS["SyntheticHard"].step_cap == 2500


def test_the_selection_trains_the_hangul_configs(tmp_path, monkeypatch):
    seen = []

    def fake_run_all(runner, need_checkpoints=()):
        seen.append((runner.config_dir, [r.name for r in runner.runs], runner.seeds,
                     runner.extra_opts, runner.records_dir))
        return []

    monkeypatch.setattr(schedule_selection.BenchmarkRunner, "run_all", fake_run_all)
    first: Schedule = HANGUL.candidates[0]
    schedule_selection.train_judged_run(ROOT, str(tmp_path / "logs"), str(tmp_path / "E3"),
                                        first.overrides(), dataset="HangulReID")
    assert seen == [(HANGUL_DIR, ["unified_w1"], [0], first.overrides(),
                     str(tmp_path / "E3" / "HangulReID" / "runs"))]


def test_the_tool_takes_the_hangul_protocol(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "select_schedule", os.path.join(ROOT, "tools", "select_schedule.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    calls = []

    def fake_select(root, runs_root, output, command, protocol):
        calls.append((output, command, protocol))
        e = protocol.candidates[-1]
        return {"chosen": {"epochs": e.epochs, "lr_steps": e.lr_steps,
                           "warmup_iters": e.warmup_iters, "steps": 1393, "met": False}}

    monkeypatch.setattr(tool, "select_schedule", fake_select)
    monkeypatch.setattr(tool, "ROOT", str(tmp_path))
    assert tool.main(["--dataset", "HangulReID"]) == 0
    output = str(tmp_path / "benchmarks" / "HangulReID" / "selection")
    assert calls == [(output, "python tools/select_schedule.py --dataset HangulReID", HANGUL)]
    with open(os.path.join(output, "selection.json")) as f:
        assert json.load(f)["chosen"]["epochs"] == 7
