"""The compatibility matrix: orientation, cells, JSON / tables / summary, bounded memory."""
import json
import logging
import tracemalloc

import numpy as np
import pytest
import torch
from evaluation_data import reid_split

import sfsc
from fastreid.config import get_cfg
from sfsc.evaluation import (
    CompatibilityEvaluator,
    evaluate_compatibility,
    evaluate_ranking,
)
from sfsc.evaluation.similarity import Scorer


def _models(split, widths=(0.25, 0.5, 1.0), seed=1):
    """Related but different features per width: the split's plus width-dependent noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for w in widths:
        noise = 2.0 * (1.0 - w)
        out[w] = tuple((split[k] + noise * rng.standard_normal(split[k].shape)).astype(np.float32)
                       for k in ("qf", "gf"))
    return out


def _ids(split):
    return split["qp"], split["qc"], split["gp"], split["gc"]


@pytest.fixture(scope="module")
def split():
    return reid_split(seed=4)


@pytest.fixture(scope="module")
def result(split):
    models = _models(split)
    return evaluate_compatibility({w: f[0] for w, f in models.items()},
                                  {w: f[1] for w, f in models.items()}, *_ids(split),
                                  chunk_size=32)


def test_every_cell_equals_the_single_pair_evaluation(split, result):
    models = _models(split)
    for i, q in enumerate(models):
        for j, g in enumerate(models):
            single = evaluate_ranking(models[q][0], models[g][1], *_ids(split)).as_dict()
            for name, value in single.items():
                assert result.metrics[name][i, j] == pytest.approx(value, abs=1e-9)
    assert len({round(v, 6) for v in result.metrics["mAP"].ravel()}) == 9  # cells differ


def test_rows_are_query_models_and_columns_gallery_models(split):
    # Model "A" has informative query features and noise for the gallery, model "B" the
    # opposite: only A's queries against B's gallery can retrieve anything.
    rng = np.random.default_rng(0)
    noise_q = rng.standard_normal(split["qf"].shape).astype(np.float32)
    noise_g = rng.standard_normal(split["gf"].shape).astype(np.float32)
    result = evaluate_compatibility({"A": split["qf"], "B": noise_q},
                                    {"A": noise_g, "B": split["gf"]}, *_ids(split))
    m_ap = np.asarray(result.to_json()["mAP"])
    assert result.query_labels == ["A", "B"] and result.gallery_labels == ["A", "B"]
    assert m_ap[0, 1] > 3 * max(m_ap[0, 0], m_ap[1, 0], m_ap[1, 1])
    assert result.cell("A", "B")["mAP"] == m_ap[0, 1]


def test_json_schema(result, tmp_path):
    data = result.to_json()
    assert list(data) == ["widths", "labels", "mAP", "R1", "R5", "R10", "mINP"]
    assert data["widths"] == [0.25, 0.5, 1.0]
    assert data["labels"] == ["0.25", "0.5", "1.0"]
    for name in ("mAP", "R1", "R5", "R10", "mINP"):
        matrix = np.asarray(data[name])
        assert matrix.shape == (3, 3) and matrix.dtype == np.float64
        assert 0 <= matrix.min() and matrix.max() <= 100
    assert np.all(np.asarray(data["R1"]) <= np.asarray(data["R5"]))
    path = result.write(str(tmp_path / "out"))
    assert path.endswith("compatibility.json")
    with open(path) as f:
        assert json.load(f) == data


def test_json_for_non_width_labels_and_rectangular_matrix(split):
    result = evaluate_compatibility({"old": split["qf"]}, {"old": split["gf"],
                                                           "new": split["gf"] * 2},
                                    *_ids(split))
    data = result.to_json()
    assert data["widths"] is None and data["labels"] == ["old"]
    assert data["gallery_labels"] == ["old", "new"] and np.shape(data["mAP"]) == (1, 2)


def test_tables_are_pipe_tables_in_percent(result):
    text = result.tables()
    assert "mAP (%) — rows: query model, columns: gallery model" in text
    assert "mINP (%) — rows: query model, columns: gallery model" in text
    assert text.count("| query \\ gallery   |   0.25 |   0.5 |   1.0 |") == 5
    assert "| 0.5               |" in text  # labels as written, not as 0.50
    assert f"{result.metrics['mAP'][1, 2]:.2f}" in text.split("\n\n")[0]
    assert "|:" in text and "--:|" in text


def test_summary_is_fastreid_shaped_for_the_largest_width(split):
    models = _models(split, widths=(1.0, 0.25, 0.5))  # the largest width is not last
    result = evaluate_compatibility({w: f[0] for w, f in models.items()},
                                    {w: f[1] for w, f in models.items()}, *_ids(split))
    summary = result.summary()
    assert list(summary) == ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    cell = result.cell(1.0, 1.0)
    assert summary["mAP"] == cell["mAP"] and summary["Rank-1"] == cell["R1"]
    assert summary["metric"] == pytest.approx((cell["mAP"] + cell["R1"]) / 2)
    full = result.fastreid_results()
    assert full["mAP/q0.25_g1.0"] == result.cell(0.25, 1.0)["mAP"]
    assert len(full) == 6 + 5 * 9


def test_skipped_queries_are_counted_and_reported(split, caplog):
    with caplog.at_level(logging.WARNING, logger="sfsc.evaluation.compatibility_evaluator"):
        result = evaluate_compatibility({1.0: split["qf"]}, {1.0: split["gf"]}, *_ids(split))
    assert result.num_skipped == 2 and result.num_valid == len(split["qp"]) - 2
    assert "2 of 90 queries have no gallery item with their identity" in caplog.text


def test_torch_features_and_backends_agree(split):
    ids = _ids(split)
    reference = evaluate_compatibility({1: split["qf"]}, {1: split["gf"]}, *ids,
                                       backend="faiss").cell(1, 1)
    for backend in ("torch", "auto"):
        other = evaluate_compatibility({1: torch.from_numpy(split["qf"])},
                                       {1: torch.from_numpy(split["gf"])}, *ids,
                                       backend=backend).cell(1, 1)
        assert other == pytest.approx(reference, abs=1e-9)


def test_dimension_mismatch_between_models_is_reported(split):
    with pytest.raises(ValueError, match="feature dimensions differ between models"):
        evaluate_compatibility({1: split["qf"], 2: split["qf"][:, :8]},
                               {1: split["gf"], 2: split["gf"][:, :8]}, *_ids(split))


def test_from_config_reads_test_compat():
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.TEST.METRIC, cfg.TEST.COMPAT.CHUNK_SIZE, cfg.TEST.COMPAT.BACKEND = "euclidean", 5, "torch"
    evaluator = CompatibilityEvaluator.from_config(cfg, [1, 2], [0, 0], [1, 2], [1, 1])
    assert (evaluator.metric, evaluator.chunk_size) == ("euclidean", 5)
    assert (evaluator.scorer.name, evaluator.scorer.metric) == ("torch", "euclidean")


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_not_by_queries_x_gallery(monkeypatch):
    rows_seen = []
    scores = Scorer.scores

    def recording(self, query, gallery, out=None):
        rows_seen.append(query.shape[0])
        return scores(self, query, gallery, out)

    monkeypatch.setattr(Scorer, "scores", recording)
    peaks = {}
    for num_query in (600, 2400):
        split = reid_split(seed=5, num_query=num_query, num_gallery=1500, num_ids=150, dim=8)
        evaluator = CompatibilityEvaluator(*_ids(split), chunk_size=32, backend="faiss")
        models = {1.0: (split["qf"], split["gf"])}
        peaks[num_query] = _peak_bytes(lambda e=evaluator, m=models: e.evaluate(m))
    full = 2400 * 1500 * 4  # one float32 Q x G matrix
    assert max(rows_seen) == 32
    assert peaks[2400] < full / 4, f"peak {peaks[2400] / 2**20:.1f} MiB"
    assert peaks[2400] < 1.5 * peaks[600]  # 4x the queries, about the same memory
    # The probe sees numpy's allocations, so a Q x G array could not go unnoticed.
    assert _peak_bytes(lambda: np.ones((2400, 1500), np.float32)) >= full
