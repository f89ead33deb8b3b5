"""tools/bench_train.py's measurement runs the real steps (a tiny model here): sum, the
aggregations asked for, and the plain step, with each aggregation's cost against sum's."""
import importlib.util
import json
import os

import pytest

from sfsc.benchmark.speed.train_speed import TrainSpeedSettings, aggregation_names, measure
from sfsc.engine.aggregation import AGGREGATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_measures_the_steps_of_each_aggregation():
    result = measure(TrainSpeedSettings(
        os.path.join(ROOT, "configs", "Base-SFSC.yml"), widths=[0.5], size=[32, 16], batch=8,
        num_classes=8, iters=1, warmup=0, device="cpu", opts=["MODEL.HEADS.EMBEDDING_DIM", "32"],
        aggregations=["pcgrad", "imtl_g"]))
    result = json.loads(json.dumps(result))  # what the tool prints as its one line
    assert set(result["step_s"]) == {"sum", "pcgrad", "imtl_g", "plain"}
    assert all(len(v) == 1 and min(v) > 0 for v in result["step_s_all"].values())
    assert result["tasks"] == 2 and result["params"] > 0
    for key in ("ratio", "paired_ratio", "ratio_cpu"):
        assert set(result[key]) == {"pcgrad/sum", "imtl_g/sum", "sum/plain"}, key
    step = result["step_s"]
    assert result["ratio"]["imtl_g/sum"] == pytest.approx(step["imtl_g"] / step["sum"], abs=2e-3)
    assert set(result["projection_s"]) == {"sum", "pcgrad", "imtl_g"}
    assert all(0 < t < step[k] for k, t in result["projection_s"].items())
    assert all(0 < t < result["projection_s"][k] for k, t in result["coefficients_s"].items())
    assert result["coefficients_frac_of_sum_step"]["imtl_g"] == pytest.approx(
        result["coefficients_s"]["imtl_g"] / step["sum"], rel=0.01, abs=1e-4)
    assert 0 < result["copy_s"] < step["sum"]
    assert result["grad_buffer_mib"] > 0
    assert set(result["peak_mem_mib"]) == {"sum", "pcgrad", "imtl_g", "plain"}


def test_the_tool_names_every_aggregation_or_refuses_an_unknown_one():
    assert aggregation_names(["pcgrad"]) == ["sum", "pcgrad"]
    assert aggregation_names(["all"]) == ["sum"] + sorted(set(AGGREGATIONS) - {"sum"})
    spec = importlib.util.spec_from_file_location(
        "bench_train", os.path.join(ROOT, "tools", "bench_train.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.parse_args(["--aggregations", "mgda", "sum"]).aggregations == ["mgda", "sum"]
    with pytest.raises(SystemExit):
        tool.parse_args(["--aggregations", "nash_mtl"])
