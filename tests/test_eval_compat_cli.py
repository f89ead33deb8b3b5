"""tools/eval_compat.py: tables and compatibility.json from saved features; clear errors."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from evaluation_data import float64_distance, reference_metrics, reid_split

from sfsc.evaluation.feature_files import evaluate_folder, find_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "eval_compat.py")


def _save(folder, name, split, feats, pids, camids, **extra):
    arrays = dict(feats=feats, pids=pids, camids=camids, **extra)
    np.savez(os.path.join(folder, f"{name}_{split}.npz"),
             **{k: v for k, v in arrays.items() if v is not None})


def _folder(tmp, names=("2", "0.5", "10"), absent_identity=False, seed=0, overrides=None):
    """One model per name; ``overrides[(name, split)]`` replaces that file's arrays."""
    overrides = overrides or {}
    data = reid_split(seed=seed, num_query=40, num_gallery=200, num_ids=12, dim=8)
    if not absent_identity:  # make every query valid
        data["qp"][:2] = data["qp"][2:4]
    os.makedirs(tmp, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        for split, f, p, c in (("query", "qf", "qp", "qc"), ("gallery", "gf", "gp", "gc")):
            arrays = dict(feats=data[f] + 0.3 * rng.standard_normal(data[f].shape),
                          pids=data[p], camids=data[c])
            arrays.update(overrides.get((name, split), {}))
            _save(tmp, name, split, **arrays)
    return tmp


def _cases(tmp):
    bad_dim = np.zeros((200, 5), np.float32)
    nan = reid_split(seed=0, num_query=40, num_gallery=200, num_ids=12, dim=8)["qf"]
    nan[7, 3] = np.nan
    shuffled = np.random.default_rng(1).permutation(
        reid_split(seed=0, num_query=40, num_gallery=200, num_ids=12, dim=8)["gp"])
    overrides = {"dim": {("10", "gallery"): dict(feats=bad_dim)},
                 "nan": {("0.5", "query"): dict(feats=nan)},
                 "array": {("2", "query"): dict(camids=None)},
                 "pids": {("2", "gallery"): dict(pids=shuffled)}}
    cases = {name: _folder(os.path.join(tmp, name), overrides=overrides.get(name))
             for name in ("ok", "dim", "nan", "array", "file", "pids")}
    os.remove(os.path.join(cases["file"], "10_gallery.npz"))
    cases["no_valid"] = _no_valid_query_folder(os.path.join(tmp, "no_valid"))
    return cases


def _no_valid_query_folder(folder):
    """Two models named by letters, whose queries' identities are all absent from the gallery."""
    _folder(folder, names=("b", "a"))
    for name in ("a", "b"):
        path = os.path.join(folder, f"{name}_query.npz")
        with np.load(path) as data:
            arrays = dict(data)
        _save(folder, name, "query", arrays["feats"], arrays["pids"] + 100, arrays["camids"])
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case in its own process, all started at once (each pays the import time)."""
    tmp = str(tmp_path_factory.mktemp("eval_compat"))
    cases = _cases(tmp)
    procs = {}
    for name, folder in cases.items():
        args = [sys.executable, TOOL, folder]
        if name == "ok":
            args += ["--output-dir", os.path.join(tmp, "ok_out")]
        procs[name] = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    out = {name: (p.wait(timeout=300), *p.communicate()) for name, p in procs.items()}
    return tmp, out


def _closest_positive_to_a_negative(dist, qp, qc, gp, gc) -> float:
    """Smallest |d(query, positive) - d(query, kept negative)| over every query."""
    gaps = []
    for row, p, c in zip(dist, qp, qc):
        kept = ~((gp == p) & (gc == c))
        pos, neg = row[kept & (gp == p)], row[kept & (gp != p)]
        if len(pos):
            gaps.append(np.abs(pos[:, None] - neg[None, :]).min())
    return min(gaps)


def test_happy_path_prints_tables_and_writes_json(runs):
    tmp, out = runs
    code, stdout, stderr = out["ok"]
    assert code == 0, stderr
    assert "mAP (%) — rows: query model, columns: gallery model" in stdout
    assert "| query \\ gallery   |   0.5 |   2.0 |   10.0 |" in stdout
    assert "40 of 40 queries evaluated (0 skipped" in stdout
    assert "skipped (as FastReID does)" not in stderr
    with open(os.path.join(tmp, "ok_out", "compatibility.json")) as f:
        data = json.load(f)
    assert data["widths"] == [0.5, 2.0, 10.0]  # by width, not by name ("10" < "2")
    # Every cell against the metrics written out on the saved arrays (float64 cosine).
    folder = os.path.join(tmp, "ok")
    arrays = {(n, s): dict(np.load(os.path.join(folder, f"{n}_{s}.npz")))
              for n in ("0.5", "2", "10") for s in ("query", "gallery")}
    for i, q in enumerate(("0.5", "2", "10")):
        for j, g in enumerate(("0.5", "2", "10")):
            query, gallery = arrays[(q, "query")], arrays[(g, "gallery")]
            dist = float64_distance(query["feats"], gallery["feats"], "cosine")
            ids = query["pids"], query["camids"], gallery["pids"], gallery["camids"]
            # Every positive is more than 1e-6 from every negative (the closest pair is 5e-6
            # apart), ten times float32's error on a cosine: the tool's float32 scores rank
            # as these float64 ones do.
            assert _closest_positive_to_a_negative(dist, *ids) > 1e-6
            expected = reference_metrics(dist, *ids)
            for key, value in expected.items():
                assert data[key][i][j] == pytest.approx(value, abs=1e-6), (key, q, g)
    assert len({round(v, 6) for row in data["mAP"] for v in row}) == 9  # nine distinct cells


def test_absent_identity_is_skipped_with_a_warning(tmp_path, caplog):
    # In this process (the subprocess runs above already cover the command line): the
    # evaluation itself is what is checked here.
    folder = _folder(str(tmp_path), absent_identity=True)
    with caplog.at_level(logging.WARNING):
        result = evaluate_folder(folder)
    assert "2 of 40 queries have no gallery item with their identity" in caplog.text
    assert (result.num_valid, result.num_skipped, result.num_query) == (38, 2, 40)


@pytest.mark.parametrize("case, message", [
    ("dim", "feature dimensions differ between models (0.5 query: 8, 0.5 gallery: 8"),
    ("nan", "0.5_query.npz: feats has NaN or inf values in 1 of 40 rows (first: row 7)"),
    ("array", "2_query.npz lacks the array(s) camids (it has: feats, pids)"),
    ("file", "model '10' has 10_query.npz but no 10_gallery.npz"),
    ("pids", "gallery pids of model '2' differ from model '0.5'"),
])
def test_garbage_in_gives_one_clear_error(runs, case, message):
    _, out = runs
    code, stdout, stderr = out[case]
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr, stderr
    assert "Traceback" not in stderr and stdout == ""


def test_no_valid_query_is_an_error_not_a_crash(runs):
    tmp, out = runs
    assert find_models(os.path.join(tmp, "no_valid")) == ["a", "b"]  # not numbers: by name
    code, stdout, stderr = out["no_valid"]
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    assert "no query has a valid gallery match" in stderr
