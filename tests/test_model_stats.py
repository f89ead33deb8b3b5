"""tools/model_stats.py: exact MAC counts, its JSON, and sub-models that are really cheaper."""
from __future__ import annotations

import json
import os

from deploy_models import ROOT, run_tool
from torch import nn

from sfsc.deploy.macs import count_macs

R18 = os.path.join(ROOT, "configs", "Market1501", "sfsc_R18.yml")


def test_macs_are_counted_exactly():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1),  # -> 8 × 8 × 4
                        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
                        nn.Conv2d(8, 12, 1, groups=2, bias=False),
                        nn.BatchNorm2d(12), nn.ReLU(), nn.Flatten(), nn.Linear(12 * 32, 5))
    per_layer = count_macs(net, (16, 8), per_layer=True)
    assert per_layer == {"0": 8 * 4 * 8 * 3 * 9, "1": 8 * 4 * 8 * 1 * 9, "2": 8 * 4 * 12 * 4,
                         "6": 12 * 32 * 5}
    assert count_macs(net, (16, 8)) == sum(per_layer.values())
    assert net.training  # restored


def test_stats_json_and_a_quarter_width_that_is_really_cheaper(tmp_path, capsys):
    out = tmp_path / "stats.json"
    argv = ["--config-file", R18, "--batch-sizes", "1", "2", "--repeats", "2", "--warmup", "1",
            "--output", out, "INPUT.SIZE_TEST", "[64,32]", "MODEL.HEADS.EMBEDDING_DIM", "64"]
    assert run_tool("model_stats", argv) == 0
    printed = capsys.readouterr().out
    assert "| width" in printed and "load average" in printed
    stats = json.loads(out.read_text())
    assert stats["input_size"] == [64, 32] and stats["feature_dim"] == 64
    assert stats["threads"] == 1 and stats["runtime"] == "torchscript"
    assert len(stats["load_average_before"]) == 3 and stats["weights"] is None
    rows = {r["width"]: r for r in stats["widths"]}
    assert sorted(rows) == [0.25, 0.5, 0.75, 1.0]
    for r in rows.values():
        assert set(r) == {"width", "parameters", "macs", "onnx_bytes", "torchscript_bytes",
                          "latency_ms", "latency_runs_ms"}
        assert set(r["latency_ms"]) == {"1", "2"} and len(r["latency_runs_ms"]["2"]) == 2
        assert r["onnx_bytes"] > 4 * r["parameters"] * 0.9  # float32 weights are in the file
    assert rows[0.25]["macs"] < rows[1.0]["macs"] / 8  # ≈ 1/16, the RGB stem keeps 3 inputs
    assert rows[0.25]["parameters"] < rows[1.0]["parameters"] / 8
    assert rows[0.25]["onnx_bytes"] < rows[1.0]["onnx_bytes"] / 8
    macs = [rows[w]["macs"] for w in sorted(rows)]
    assert macs == sorted(macs)


def test_sizes_only_and_a_width_subset(tmp_path, capsys):
    argv = ["--config-file", R18, "--no-latency", "--widths", "0.5", "1.0",
            "--output", tmp_path / "s.json", "INPUT.SIZE_TEST", "[64,32]"]
    assert run_tool("model_stats", argv) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [r["width"] for r in stats["widths"]] == [0.5, 1.0]
    assert stats["runtime"] is None and stats["widths"][0]["latency_ms"] == {}
    assert run_tool("model_stats", ["--config-file", R18, "--no-latency", "--widths", "0.3"]) == 2
    assert "0.3 is not one of the widths" in capsys.readouterr().err
