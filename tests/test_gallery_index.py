"""Gallery indexes (tools/build_index.py, tools/search_index.py): lists checked against a
brute-force numpy search, junk, search parameters, named errors, features from images, the
ranked-list picture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_models import make_output_dir, run_tool, tiny_cfg
from index_data import brute_force, write_split
from PIL import Image

from fastreid.data.transforms import build_transforms
from sfsc.deploy import load_rgb, load_switchable
from sfsc.deploy.image_sources import list_images
from sfsc.deploy.index import (
    DimensionMismatchError,
    IndexInputError,
    MetricMismatchError,
    gpu_count,
    load_feature_set,
    load_index_folder,
    search_folders,
)
from sfsc.deploy.index.devices import to_device
from sfsc.deploy.index.search import gallery_ids, query_matches
from sfsc.evaluation import evaluate_ranking
from sfsc.evaluation.feature_extraction import extract_features
from sfsc.evaluation.list_metrics import list_metrics
from sfsc.evaluation.rank_grid import GridLayout

DIM = 24


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(folder, query arrays, gallery arrays) of saved features made here."""
    folder = tmp_path_factory.mktemp("features")
    gallery = write_split(folder / "1.0_gallery.npz", 1200, DIM, seed=0)
    query = write_split(folder / "0.25_query.npz", 40, DIM, seed=1)
    return folder, query, gallery


def _build(files, out, *options) -> int:
    return run_tool("build_index", ["--gallery", files[0] / "1.0_gallery.npz", "--output", out,
                                    *options])


def _search(index, query_file, out, *options) -> dict:
    assert run_tool("search_index", ["--index", index, "--query", query_file, "--output", out,
                                     *options]) == 0
    with np.load(out) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_flat_index_returns_the_brute_force_lists(files, tmp_path, metric):
    folder, query, gallery = files
    assert _build(files, tmp_path / "flat", "--index-factory", "Flat", "--metric", metric) == 0
    got = _search(tmp_path / "flat", folder / "0.25_query.npz", tmp_path / "r.npz", "--k", "10")
    rows, scores = brute_force(query, gallery, 10, metric)
    assert np.array_equal(got["indices"], rows)
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-4, atol=1e-4)
    assert np.array_equal(got["pids"], gallery["pids"][rows])
    assert np.array_equal(got["query_pids"], query["pids"])
    assert str(got["metric"]) == metric
    meta = load_index_folder(str(tmp_path / "flat")).meta
    assert (meta["dim"], meta["metric"], meta["width"], meta["ntotal"]) == (DIM, metric, 1.0,
                                                                            1200)


def test_junk_is_kept_on_request(files, tmp_path):
    folder, query, gallery = files
    assert _build(files, tmp_path / "flat", "--index-factory", "Flat") == 0
    got = _search(tmp_path / "flat", folder / "0.25_query.npz", tmp_path / "r.npz",
                  "--keep-junk", "--k", "7")
    assert np.array_equal(got["indices"], brute_force(query, gallery, 7, drop_junk=False)[0])


def test_ivf_probing_every_list_is_exact_and_nprobe_reaches_the_index(files, tmp_path):
    folder, query, gallery = files
    assert _build(files, tmp_path / "ivf", "--index-factory", "IVF8,Flat") == 0
    every = _search(tmp_path / "ivf", folder / "0.25_query.npz", tmp_path / "a.npz",
                    "--nprobe", "8")
    assert np.array_equal(every["indices"], brute_force(query, gallery, 10)[0])
    one = _search(tmp_path / "ivf", folder / "0.25_query.npz", tmp_path / "b.npz",
                  "--nprobe", "1")
    assert not np.array_equal(one["indices"], every["indices"])


def test_hnsw_with_a_deep_search_finds_the_exact_neighbours(files, tmp_path):
    folder, query, gallery = files
    assert _build(files, tmp_path / "hnsw", "--index-factory", "HNSW16") == 0
    got = _search(tmp_path / "hnsw", folder / "0.25_query.npz", tmp_path / "r.npz",
                  "--ef-search", "256")
    exact = brute_force(query, gallery, 10)[0]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got["indices"], exact)])
    assert recall >= 0.99
    assert run_tool("search_index", ["--index", tmp_path / "hnsw", "--query",
                                     folder / "0.25_query.npz", "--output", tmp_path / "x.npz",
                                     "--nprobe", "4"]) == 2


def test_truncated_list_metrics_equal_the_evaluator_on_full_lists(files, tmp_path):
    folder, query, gallery = files
    assert _build(files, tmp_path / "flat", "--index-factory", "Flat") == 0
    index = load_index_folder(str(tmp_path / "flat"))
    queries = load_feature_set(str(folder / "0.25_query.npz"))
    result = search_folders([index], queries, k=len(gallery["pids"]))
    matches = query_matches(queries.pids, queries.camids, *gallery_ids([index])[:2])
    ours = list_metrics(result.indices, matches).summary()
    reference = evaluate_ranking(query["feats"], gallery["feats"], query["pids"],
                                 query["camids"], gallery["pids"], gallery["camids"])
    assert ours["num_valid"] == reference.num_valid
    assert ours["mAP"] == pytest.approx(reference.mAP, abs=1e-6)
    assert ours["R1"] == pytest.approx(reference.cmc[1], abs=1e-6)
    top5 = list_metrics(result.indices[:, :5], matches).summary()
    assert top5["R1"] == pytest.approx(reference.cmc[1], abs=1e-6)
    assert top5["mAP"] < ours["mAP"]  # positives past the list count in the denominator


def test_mismatched_queries_are_refused_with_named_errors(files, tmp_path, capsys):
    folder, query, _ = files
    assert _build(files, tmp_path / "flat", "--index-factory", "Flat") == 0
    index = load_index_folder(str(tmp_path / "flat"))
    write_split(tmp_path / "narrow_query.npz", 5, 16, seed=2)
    with pytest.raises(DimensionMismatchError, match="16-d but the index holds 24-d"):
        search_folders([index], load_feature_set(str(tmp_path / "narrow_query.npz")))
    capsys.readouterr()
    assert run_tool("search_index", ["--index", tmp_path / "flat", "--query",
                                     tmp_path / "narrow_query.npz", "--output",
                                     tmp_path / "r.npz"]) == 2
    assert "16-d but the index holds 24-d" in capsys.readouterr().err
    write_split(tmp_path / "l2_query.npz", 5, DIM, seed=2, metric=np.asarray("euclidean"))
    with pytest.raises(MetricMismatchError, match="euclidean similarity but the index ranks"):
        search_folders([index], load_feature_set(str(tmp_path / "l2_query.npz")))
    with pytest.raises(MetricMismatchError):
        search_folders([index], load_feature_set(str(folder / "0.25_query.npz")),
                       metric="euclidean")


def test_bad_inputs_are_user_errors(files, tmp_path, capsys):
    assert _build(files, tmp_path / "x", "--index-factory", "IVF8,Nonsense") == 2
    assert "index_factory string" in capsys.readouterr().err
    assert _build(files, tmp_path / "x", "--index-factory", "IVF5000,Flat") == 2
    assert "cannot place 5000 IVF centroids" in capsys.readouterr().err
    with pytest.raises(IndexInputError, match="not an index folder"):
        load_index_folder(str(tmp_path))


@pytest.mark.skipif(gpu_count() > 0, reason="faiss sees a GPU here: nothing to refuse")
def test_gpu_without_faiss_gpu_is_a_named_error():
    import faiss

    for device in ("gpu", "all-gpus"):
        with pytest.raises(IndexInputError, match="needs faiss-gpu and a CUDA device"):
            to_device(faiss.IndexFlatIP(4), device)


@pytest.mark.skipif(gpu_count() == 0, reason="needs faiss-gpu and a CUDA device")
@pytest.mark.parametrize("device", ["gpu", "all-gpus"])
def test_gpu_search_equals_cpu_search(files, tmp_path, device):
    folder, _, _ = files
    assert _build(files, tmp_path / "ivf", "--index-factory", "IVF8,Flat", "--device",
                  device) == 0
    cpu = _search(tmp_path / "ivf", folder / "0.25_query.npz", tmp_path / "a.npz",
                  "--nprobe", "8")
    gpu = _search(tmp_path / "ivf", folder / "0.25_query.npz", tmp_path / "b.npz",
                  "--nprobe", "8", "--device", device)
    assert np.array_equal(cpu["indices"], gpu["indices"])


def _market_images(folder, pids_cams, seed):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for n, (pid, cam) in enumerate(pids_cams):
        array = rng.integers(0, 256, (40, 20, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"{pid:04d}_c{cam}s1_{n:06d}_01.jpg")


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # inside FastReID's ToTensor
def test_index_from_images_with_a_model_and_its_picture(tmp_path):
    model_dir = tmp_path / "model"
    cfg = tiny_cfg(size=(32, 16))
    cfg.TEST.FLIP.ENABLED = True  # the evaluation's test-time flip, which the index follows
    make_output_dir(cfg, str(model_dir))
    _market_images(tmp_path / "gallery", [(p, c) for p in (1, 2, 3, 4) for c in (1, 2, 3)], 0)
    _market_images(tmp_path / "query", [(1, 1), (2, 2), (3, 3), (4, 1)], 1)
    common = ["--model-dir", model_dir]
    assert run_tool("build_index", ["--images", tmp_path / "gallery", "--width", "1.0",
                                    "--index-factory", "Flat", "--output", tmp_path / "ix",
                                    *common]) == 0
    assert run_tool("search_index", ["--index", tmp_path / "ix", "--images", tmp_path / "query",
                                     "--width", "0.25", "--k", "5", "--output",
                                     tmp_path / "r.npz", "--draw", tmp_path / "ranks.png",
                                     *common]) == 0
    # the reference: the evaluation's own extraction (test transforms, flip as configured)
    loaded = load_switchable(str(model_dir))
    assert loaded.cfg.TEST.FLIP.ENABLED
    transforms = build_transforms(loaded.cfg, is_train=False)
    feats = {}
    for w, split in ((1.0, "gallery"), (0.25, "query")):
        images = [transforms(load_rgb(path)) for _, path in list_images(str(tmp_path / split))]
        batch = {"images": torch.stack(images), "targets": torch.zeros(len(images)),
                 "camids": torch.zeros(len(images))}
        feats[w] = extract_features(loaded.model, [batch], [w], flip=True)[0][w].numpy()
    index = load_index_folder(str(tmp_path / "ix"))
    assert index.meta["width"] == 1.0 and index.meta["model"]["kind"] == "switchable"
    assert index.pids.tolist() == [p for p in (1, 2, 3, 4) for _ in range(3)]
    gallery = dict(feats=feats[1.0], pids=index.pids, camids=index.camids)
    query = dict(feats=feats[0.25], pids=np.array([1, 2, 3, 4]), camids=np.array([0, 1, 2, 0]))
    with np.load(tmp_path / "r.npz") as got:
        assert np.array_equal(got["indices"], brute_force(query, gallery, 5)[0])
        assert got["query_camids"].tolist() == [0, 1, 2, 0]
    with Image.open(tmp_path / "ranks.png") as picture:
        assert picture.size == GridLayout(rows=4, k=5).size


def test_ivf_pq_skips_polysemous_training():
    # faiss's factory turns it on; it only serves Hamming pre-filtering, which search leaves
    # off, and costs minutes on 64 sub-quantisers (seconds even on this test's tiny index)
    import faiss

    from sfsc.deploy.index.faiss_ops import new_index

    index = new_index("IVF8,PQ8", 16, "cosine")
    assert faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training is False
    assert faiss.downcast_index(new_index("PQ8", 16, "cosine")).do_polysemous_training is False
