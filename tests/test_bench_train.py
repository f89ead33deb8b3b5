"""tools/bench_train.py runs the real steps and prints one JSON line (a tiny model here)."""
import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_prints_one_json_line(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_train", os.path.join(ROOT, "tools", "bench_train.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--widths", "0.5", "--size", "32", "16", "--batch", "8", "--num-classes", "8",
                "--iters", "1", "--warmup", "0", "--device", "cpu",
                "MODEL.HEADS.EMBEDDING_DIM", "32"])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result["step_s"]) == {"sum", "pcgrad", "plain"}
    assert all(len(v) == 1 and min(v) > 0 for v in result["step_s_all"].values())
    assert result["tasks"] == 2 and result["params"] > 0
    assert all(0 < t < result["step_s"]["pcgrad"] for t in result["projection_s"].values())
    assert 0 < result["copy_s"] < result["step_s"]["pcgrad"]
    assert result["grad_buffer_mib"] > 0
    assert set(result["peak_mem_mib"]) == {"sum", "pcgrad", "plain"}
