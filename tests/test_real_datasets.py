"""Market-1501, MSMT17 and VeRi-776 in their real layouts: FastReID's own classes read the tiny
fixtures, and the repository's configs train and evaluate on them end to end, with every cell
of the reported compatibility matrix equal to the metrics recomputed here from the checkpoint."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from dataset_fixtures import (
    build_market1501,
    build_msmt17,
    build_veri,
    check_training_outputs,
    tiny_cfg,
    train_tiny,
)
from PIL import Image

import sfsc  # noqa: F401  (before FastReID: compatibility patches)
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.modeling.meta_arch import build_model
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.modeling.switchable import width_context

# (registry name, fixture builder, FastReID's prefix for training labels, sfsc_R18 config)
DATASETS = [
    ("Market1501", build_market1501, "market1501", "Market1501/sfsc_R18.yml"),
    ("MSMT17", build_msmt17, "msmt17", "MSMT17/sfsc_R18.yml"),
    ("VeRi", build_veri, "veri", "VeRi/sfsc_R18.yml"),
]
IDS = [d[0] for d in DATASETS]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """One dataset root per data set, each holding that data set's fixture."""
    out = {}
    for name, build, _, _ in DATASETS:
        root = str(tmp_path_factory.mktemp(f"root_{name.lower()}"))
        out[name] = (root, build(root))
    return out


@pytest.mark.parametrize("name,build,prefix,config", DATASETS, ids=IDS)
def test_fastreid_reads_the_fixture(roots, name, build, prefix, config):
    root, counts = roots[name]
    data = DATASET_REGISTRY.get(name)(root=root)
    assert data.get_num_pids(data.train) == counts.train_ids
    assert (len(data.train), len(data.query), len(data.gallery)) == \
        (counts.train, counts.query, counts.gallery)
    assert all(pid.startswith(prefix + "_") and camid.startswith(prefix + "_")
               for _, pid, camid in data.train)
    assert all(isinstance(pid, int) and isinstance(camid, int)
               for _, pid, camid in data.query + data.gallery)
    assert all(os.path.isfile(path) for path, _, _ in data.train + data.query + data.gallery)
    # Every query has a gallery image of its identity from another camera.
    for _, pid, camid in data.query:
        assert any(p == pid and c != camid for _, p, c in data.gallery)
    if name == "Market1501":  # background (0000) is read, junk (-1) skipped
        assert 0 in {pid for _, pid, _ in data.gallery}
        assert -1 not in {pid for _, pid, _ in data.gallery}
    if name == "MSMT17":  # FastReID shifts test ids past the train ids
        assert min(pid for _, pid, _ in data.query) == counts.train_ids


def test_fastreid_reads_msmt17_v1(tmp_path):
    counts = build_msmt17(str(tmp_path), version="MSMT17_V1")
    data = DATASET_REGISTRY.get("MSMT17")(root=str(tmp_path))
    assert "MSMT17_V1" in data.train[0][0]
    assert (data.get_num_pids(data.train), len(data.train), len(data.query),
            len(data.gallery)) == (counts.train_ids, counts.train, counts.query, counts.gallery)


@pytest.mark.parametrize("name,build,prefix,config", DATASETS, ids=IDS)
def test_sfsc_config_trains_and_evaluates(roots, tmp_path, monkeypatch, name, build, prefix,
                                          config):
    # FastReID fixed its dataset root from FASTREID_DATASETS at import.
    monkeypatch.setattr("fastreid.data.build._root", roots[name][0])
    out = train_tiny(config, str(tmp_path / "run"))
    check_training_outputs(out)
    with open(os.path.join(out, "compatibility.json")) as f:
        reported = json.load(f)
    data = DATASET_REGISTRY.get(name)(root=roots[name][0])
    cfg = tiny_cfg(config, out, "MODEL.HEADS.NUM_CLASSES", str(roots[name][1].train_ids))
    feats = _features(cfg, os.path.join(out, "model_final.pth"), data.query + data.gallery)
    q_pids, q_cams = (np.array([x[i] for x in data.query]) for i in (1, 2))
    g_pids, g_cams = (np.array([x[i] for x in data.gallery]) for i in (1, 2))
    nq = len(data.query)
    floor = _worst_map(q_pids, q_cams, g_pids, g_cams)
    # The evaluator ranks float32 scores of its own batched forward; near-tied gallery items of
    # the tiny fixture (a few nearly identical images) can swap between the two computations.
    # One swap moves a query's AP by a fraction and its rank-k hit by at most one query.
    one_query = 100.0 / nq
    tolerance = {"mAP": one_query, "mINP": one_query, "R1": one_query + 1e-6,
                 "R5": one_query + 1e-6, "R10": one_query + 1e-6}
    exact = 0
    for i, wq in enumerate(reported["widths"]):
        for j, wg in enumerate(reported["widths"]):
            expected = _reference_metrics(feats[wq][:nq], feats[wg][nq:], q_pids, q_cams,
                                          g_pids, g_cams)
            for metric, value in expected.items():
                assert reported[metric][i][j] == pytest.approx(value, abs=tolerance[metric]), \
                    (metric, wq, wg)
                exact += reported[metric][i][j] == pytest.approx(value, abs=1e-3)
            # Any ranking scores at least the all-positives-last mAP; CMC grows with K.
            assert reported["mAP"][i][j] >= floor - 1e-6
            assert reported["R1"][i][j] <= reported["R5"][i][j] <= reported["R10"][i][j]
    cells = 5 * len(reported["widths"]) ** 2
    assert exact >= 0.8 * cells, f"only {exact} of {cells} cells equal the reference"


def _features(cfg, checkpoint, items):
    """{width: (N, D) features} of the images in ``items``, by a plain eval-mode forward."""
    model = build_model(cfg)
    SFSCCheckpointer(model).load(checkpoint)
    model.eval()
    transform = build_transforms(cfg, is_train=False)
    images = torch.stack([transform(Image.open(path).convert("RGB")) for path, _, _ in items])
    with torch.no_grad():
        out = {}
        for width in model.widths:
            with width_context(model, width):
                out[float(width)] = model({"images": images}).numpy()
    return out


def _kept(q_pid, q_cam, g_pids, g_cams):
    return ~((g_pids == q_pid) & (g_cams == q_cam))  # same identity and camera: junk


def _reference_metrics(qf, gf, q_pids, q_cams, g_pids, g_cams):
    """Market-1501 protocol, written out: cosine scores, junk removed, a negative tied with a
    positive ranked first; -> {mAP, R1, R5, R10, mINP} in percent."""
    qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    aps, firsts, inps = [], [], []
    for q in range(len(qf)):
        kept = _kept(q_pids[q], q_cams[q], g_pids, g_cams)
        scores = (gf[kept] @ qf[q]).astype(np.float64)
        match = g_pids[kept] == q_pids[q]
        if not match.any():
            continue
        order = np.lexsort((match, -scores))  # by score, negatives first among ties
        ranks = np.flatnonzero(match[order]) + 1  # 1-based ranks of the positives
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        firsts.append(ranks[0])
        inps.append(len(ranks) / ranks[-1])
    firsts = np.array(firsts)
    return {"mAP": 100 * np.mean(aps), "R1": 100 * np.mean(firsts <= 1),
            "R5": 100 * np.mean(firsts <= 5), "R10": 100 * np.mean(firsts <= 10),
            "mINP": 100 * np.mean(inps)}


def _worst_map(q_pids, q_cams, g_pids, g_cams):
    """mAP (%) when every query's positives come last among its kept gallery items."""
    aps = []
    for q in range(len(q_pids)):
        kept = _kept(q_pids[q], q_cams[q], g_pids, g_cams)
        n, m = int((g_pids[kept] == q_pids[q]).sum()), int(kept.sum())
        if n:
            aps.append(np.mean([k / (m - n + k) for k in range(1, n + 1)]))
    return 100 * np.mean(aps)
