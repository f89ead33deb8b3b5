"""tools/bench_eval.py's parts: realistic synthetic features, the FastReID comparison."""
import json

import numpy as np

from sfsc.benchmark.speed import eval_speed, eval_timing
from sfsc.benchmark.speed.eval_speed import SCALES, SpeedSettings, compare, plan_fastreid
from sfsc.benchmark.speed.eval_timing import METRICS
from sfsc.benchmark.speed.synthetic_features import generate, load_features
from sfsc.evaluation import evaluate_compatibility


def test_generated_features_are_reid_like_and_not_trivial(tmp_path):
    info = generate(str(tmp_path), num_query=400, num_gallery=2000, num_ids=100,
                               num_cams=5, num_distractors=300, dim=128,
                               widths=[0.25, 1.0], seed=0, unmatched_fraction=0.05)
    widths, feats, qp, qc, gp, gc = load_features(str(tmp_path))
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
    monkeypatch.setattr(eval_speed, "_available_bytes", lambda: 24 * 2**30)
    plan = plan_fastreid(SpeedSettings(**SCALES["msmt"]), "cython", 16)
    assert "distance matrix" in plan["skipped"] and "--fastreid-queries" in plan["skipped"]
    plan = plan_fastreid(SpeedSettings(**SCALES["msmt"], fastreid_queries=200), "cython", 16)
    assert plan["queries"] == 200 and not plan["full_scale_fits"]  # timed on a subset only


def test_differences_are_accepted_only_inside_fastreid_tie_range():
    ours = {m: [[50.0]] for m in METRICS}
    cell = {m: 50.0 for m in METRICS}
    cell["ties"] = {m: [50.0, 50.0] for m in METRICS}
    assert compare(ours, {"0,0": cell}, 1e-4)["agree"]
    cell["mAP"] = 50.001  # FastReID differs beyond the tolerance, and not through ties ...
    assert not compare(ours, {"0,0": cell}, 1e-4)["agree"]
    cell["ties"]["mAP"] = [49.999, 50.002]  # ... or only by how it ordered tied distances
    check = compare(ours, {"0,0": cell}, 1e-4)
    assert check["agree"] and check["of_which_within_fastreid_ties"] == 1


def test_report_agrees_with_fastreid(monkeypatch):
    # The child processes' work runs in this process: same code, without paying the imports
    # of two more interpreters.
    monkeypatch.setattr(eval_speed, "_run_child", eval_timing.run_child)
    report = eval_speed.run_benchmark(
        SpeedSettings(num_query=60, num_gallery=400, num_ids=20, num_cams=3, num_distractors=0,
                      dim=32, widths=[0.5, 1.0], rankers=["python"], python_queries=30),
        log=lambda msg: None)
    report = json.loads(json.dumps(report))  # what the tool prints as its one line
    assert report["agree"] and report["fastreid_python"]["agree"]
    assert report["fastreid_python"]["extrapolated"] and report["cells"] == 4
    assert report["fastreid_python"]["queries_measured"] == 30
    assert report["fastreid_python"]["max_abs_diff_percent"]["mAP"] < 1e-4
    assert report["ours"]["peak_rss_mb"] > 0 and report["speedup_vs_python"] > 0
