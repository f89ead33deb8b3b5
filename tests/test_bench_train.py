"""tools/bench_train.py's measurement runs the real steps (a tiny model here)."""
import json
import os

from sfsc.benchmark.speed.train_speed import TrainSpeedSettings, measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_measures_the_three_steps():
    result = measure(TrainSpeedSettings(
        os.path.join(ROOT, "configs", "Base-SFSC.yml"), widths=[0.5], size=[32, 16], batch=8,
        num_classes=8, iters=1, warmup=0, device="cpu", opts=["MODEL.HEADS.EMBEDDING_DIM", "32"]))
    result = json.loads(json.dumps(result))  # what the tool prints as its one line
    assert set(result["step_s"]) == {"sum", "pcgrad", "plain"}
    assert all(len(v) == 1 and min(v) > 0 for v in result["step_s_all"].values())
    assert result["tasks"] == 2 and result["params"] > 0
    assert all(0 < t < result["step_s"]["pcgrad"] for t in result["projection_s"].values())
    assert 0 < result["copy_s"] < result["step_s"]["pcgrad"]
    assert result["grad_buffer_mib"] > 0
    assert set(result["peak_mem_mib"]) == {"sum", "pcgrad", "plain"}
