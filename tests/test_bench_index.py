"""Pieces of the gallery-index benchmark (tools/bench_index.py): made distractors keep the real
ones' identity structure and never match a query; the findings read the measurements right."""
from __future__ import annotations

import numpy as np

from sfsc.benchmark.gallery_index.analysis import findings
from sfsc.benchmark.gallery_index.distractors import DISTRACTOR_PID_BASE, _records
from sfsc.benchmark.gallery_index.made_features import MADE_PID_BASE, made_distractors
from sfsc.benchmark.gallery_index.measure import index_bytes
from sfsc.data.params import SYNTHETIC_REID_TINY
from sfsc.deploy.index.faiss_ops import new_index


def _real(num_ids=40, per_id=6, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim)) * 2
    pids = np.repeat(np.arange(num_ids) + DISTRACTOR_PID_BASE, per_id)
    feats = centres[pids - DISTRACTOR_PID_BASE] + rng.standard_normal((len(pids), dim))
    return feats.astype(np.float32), pids, rng.integers(0, 6, len(pids))


def test_made_distractors_cluster_by_identity_like_real_ones():
    real, pids, camids = _real()
    feats, made_pids, made_camids = made_distractors(real, pids, camids, 3000, seed=1)
    assert feats.shape == (3000, 32) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert made_pids.min() >= MADE_PID_BASE and set(made_camids) <= set(camids)
    same = made_pids[:, None] == made_pids[None, :]
    cos = feats @ feats.T
    off_diagonal = ~np.eye(len(feats), dtype=bool)
    within, between = cos[same & off_diagonal].mean(), cos[~same].mean()
    unit = real / np.linalg.norm(real, axis=1, keepdims=True)
    real_same = pids[:, None] == pids[None, :]
    real_cos = unit @ unit.T
    real_within = real_cos[real_same & ~np.eye(len(real), dtype=bool)].mean()
    assert within > between + 0.3  # identities, not noise
    assert abs(within - real_within) < 0.1  # with the real within-identity spread
    again = made_distractors(real, pids, camids, 3000, seed=1)[0]
    assert np.array_equal(feats, again)


def test_distractor_identities_are_outside_the_dataset():
    records = _records(SYNTHETIC_REID_TINY, 300, ids_per_plan=16)  # several plans
    assert len(records) == 300
    pids = [pid for *_, pid in records]
    assert min(pids) >= DISTRACTOR_PID_BASE and all(rec.identity >= 0 for _, rec, _ in records)
    # one identity per (plan, person): as many pids as people drawn
    people = {(id(plan), rec.identity) for plan, rec, _ in records}
    assert len(set(pids)) == len(people)


def _entry(name, param, rows):
    """An index entry of ``rows``: (value, width, recall@10, speed-up)."""
    points = [{param or "setting": v, "width": w, "recall@10": r, "speedup": s, "mAP": 50.0,
               "mAP_exact": 50.0} for v, w, r, s in rows]
    return {"name": name, "param": param, "gallery_size": 1000, "points": points}


def test_findings_name_the_target_point_and_the_sub_model_loss():
    entries = [
        _entry("Flat", None, [(None, w, 1.0, 1.0) for w in (0.25, 1.0)]),
        _entry("IVF-Flat", "nprobe", [(8, 0.25, 0.90, 30.0), (8, 1.0, 0.97, 30.0),
                                      (32, 0.25, 0.96, 12.0), (32, 1.0, 0.99, 11.0),
                                      (128, 0.25, 0.99, 4.0), (128, 1.0, 1.0, 4.0)]),
    ]
    found = findings({"main": {"indexes": entries}})["main"]
    target = found["target"]
    assert target["reached"]
    assert [(p["value"], p["min_recall@10"], p["min_speedup"]) for p in target["points"]] == \
        [(32, 0.96, 11.0)]
    lost = found["mean_recall@10_lost"]["IVF-Flat"]
    assert np.isclose(lost["0.25"], (0.10 + 0.04 + 0.01) / 3)
    assert np.isclose(lost["1"], (0.03 + 0.01 + 0.0) / 3)
    assert found["remedy"]["nprobe_needed"] == {"0.25": 32, "1": 8}
    slow = [_entry("IVF-Flat", "nprobe", [(8, 0.25, 0.90, 30.0), (8, 1.0, 0.97, 30.0),
                                          (64, 0.25, 0.99, 5.0), (64, 1.0, 1.0, 5.0)])]
    missed = findings({"main": {"indexes": slow}})["main"]["target"]
    assert not missed["reached"] and missed["closest_fast_enough"]["value"] == 8


def test_index_size_counts_what_the_index_holds():
    import faiss

    feats = np.random.default_rng(0).standard_normal((3000, 32)).astype(np.float32)
    flat = faiss.IndexFlatIP(32)
    flat.add(feats)
    assert feats.nbytes <= index_bytes(flat) < feats.nbytes + 4096
    pq = new_index("PQ8", 32, "euclidean")  # 8 bytes per row instead of 128
    pq.train(feats)
    pq.add(feats)
    assert 3000 * 8 <= index_bytes(pq) < feats.nbytes / 4
