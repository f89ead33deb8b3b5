"""tools/bench_eval.py: realistic synthetic features, the FastReID comparison, the JSON line."""
import json
import os
import sys

import numpy as np

from sfsc.evaluation import evaluate_compatibility

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_eval  # noqa: E402


def test_generated_features_are_reid_like_and_not_trivial(tmp_path):
    info = bench_eval.generate(str(tmp_path), num_query=400, num_gallery=2000, num_ids=100,
                               num_cams=5, num_distractors=300, dim=128,
                               widths=[0.25, 1.0], seed=0, unmatched_fraction=0.05)
    widths, feats, qp, qc, gp, gc = bench_eval._load(str(tmp_path))
    assert feats[0][0].dtype == np.float32 and feats[0][0].shape == (400, 128)
    assert (gp == 0).sum() >= 300 and len(np.unique(gc)) == 5
    assert info["queries_without_match"] > 0
    result = evaluate_compatibility({w: f[0] for w, f in zip(widths, feats)},
                                    {w: f[1] for w, f in zip(widths, feats)}, qp, qc, gp, gc)
    assert result.num_skipped == info["queries_without_match"]
    m_ap = result.metrics["mAP"]
    assert 10 < m_ap.min() and m_ap.max() < 95
    assert m_ap[1, 1] > m_ap[0, 0]  # the full width is the better model


def test_fastreid_is_not_run_when_its_distance_matrix_does_not_fit(monkeypatch):
    monkeypatch.setattr(bench_eval, "_available_bytes", lambda: 24 * 2**30)
    args = bench_eval.parse_args(["--scale", "msmt"])
    plan = bench_eval._plan(args, "cython", 11659, 82161, 16)
    assert "distance matrix" in plan["skipped"] and "--fastreid-queries" in plan["skipped"]
    args = bench_eval.parse_args(["--scale", "msmt", "--fastreid-queries", "200"])
    plan = bench_eval._plan(args, "cython", 11659, 82161, 16)
    assert plan["queries"] == 200 and not plan["full_scale_fits"]  # timed on a subset only


def test_differences_are_accepted_only_inside_fastreid_tie_range():
    ours = {m: [[50.0]] for m in bench_eval.METRICS}
    cell = {m: 50.0 for m in bench_eval.METRICS}
    cell["ties"] = {m: [50.0, 50.0] for m in bench_eval.METRICS}
    assert bench_eval._compare(ours, {"0,0": cell}, 1e-4)["agree"]
    cell["mAP"] = 50.001  # FastReID differs beyond the tolerance, and not through ties ...
    assert not bench_eval._compare(ours, {"0,0": cell}, 1e-4)["agree"]
    cell["ties"]["mAP"] = [49.999, 50.002]  # ... or only by how it ordered tied distances
    check = bench_eval._compare(ours, {"0,0": cell}, 1e-4)
    assert check["agree"] and check["of_which_within_fastreid_ties"] == 1


def test_prints_one_json_line_and_agrees_with_fastreid(monkeypatch, capsys):
    # The child processes' work runs in this process: same code, without paying the imports
    # of two more interpreters.
    monkeypatch.setattr(bench_eval, "_run_child", bench_eval.run_child)
    code = bench_eval.main(["--num-query", "60", "--num-gallery", "400", "--num-ids", "20",
                            "--num-cams", "3", "--dim", "32", "--widths", "0.5,1.0",
                            "--fastreid", "python", "--python-queries", "30"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 1
    report = json.loads(lines[0])
    assert report["agree"] and report["fastreid_python"]["agree"]
    assert report["fastreid_python"]["extrapolated"] and report["cells"] == 4
    assert report["fastreid_python"]["queries_measured"] == 30
    assert report["fastreid_python"]["max_abs_diff_percent"]["mAP"] < 1e-4
    assert report["ours"]["peak_rss_mb"] > 0 and report["speedup_vs_python"] > 0
