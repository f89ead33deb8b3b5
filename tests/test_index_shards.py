"""An index built shard by shard from one trained index: merged, or searched shard by shard
with a top-k merge, it returns what one index built from that trained index returns."""
from __future__ import annotations

import numpy as np
import pytest
from deploy_models import run_tool
from index_data import write_split

from sfsc.deploy.index import (
    IndexInputError,
    load_feature_set,
    load_index_folder,
    merge_index_folders,
    search_folders,
    shard_rows,
)
from sfsc.deploy.index.build import ShardSpec

DIM, ROWS, SHARDS = 16, 1000, 3


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shard-features")
    paths = [f"img/{i:05d}.jpg" for i in range(ROWS)]
    write_split(folder / "gallery.npz", ROWS, DIM, seed=3, paths=paths)
    write_split(folder / "query.npz", 30, DIM, seed=4)
    return folder


def _build(features, out, *options):
    assert run_tool("build_index", ["--gallery", features / "gallery.npz", "--output", out,
                                    *options]) == 0
    return str(out)


@pytest.fixture(scope="module", params=["IVF8,Flat", "IVF8,PQ8"])
def built(request, features, tmp_path_factory):
    """(one index from the trained index, [its shards]) of the factory ``param``."""
    out = tmp_path_factory.mktemp("shards")
    trained = _build(features, out / "trained", "--index-factory", request.param, "--train-only")
    whole = _build(features, out / "whole", "--trained", trained)
    shards = [_build(features, out / f"s{i}", "--trained", trained, "--shard", f"{i}/{SHARDS}")
              for i in (2, 0, 1)]  # any order: the rows each holds decide
    return whole, shards


def test_shard_rows_split_the_gallery_contiguously():
    ranges = [shard_rows(10, ShardSpec(i, 3)) for i in range(3)]
    assert ranges == [(0, 3), (3, 6), (6, 10)]


def _tie_order(result) -> np.ndarray:
    """The lists' rows with exactly equal scores in row order: faiss orders such ties freely
    (PQ codes can coincide)."""
    order = np.lexsort((result.indices, -result.scores), axis=1)
    return np.take_along_axis(result.indices, order, axis=1)


@pytest.mark.parametrize("nprobe", [1, 3])
def test_merged_and_top_k_merged_shards_return_what_one_index_returns(features, built, nprobe,
                                                                      tmp_path):
    whole, shards = built
    queries = load_feature_set(str(features / "query.npz"))
    expected = search_folders([load_index_folder(whole)], queries, 20, nprobe=nprobe)
    folders = [load_index_folder(s) for s in shards]
    assert sorted(f.meta["rows"][0] for f in folders) == [0, 333, 666]
    by_shard = search_folders(folders, queries, 20, nprobe=nprobe)
    assert run_tool("build_index", ["--merge", *shards, "--output", tmp_path / "merged"]) == 0
    merged = load_index_folder(str(tmp_path / "merged"))
    in_one = search_folders([merged], queries, 20, nprobe=nprobe)
    for got in (by_shard, in_one):
        np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-6)
        assert np.array_equal(_tie_order(got), _tie_order(expected))
    assert np.array_equal(_tie_order(in_one), _tie_order(expected))
    assert merged.paths == load_index_folder(whole).paths
    assert expected.paths[0, 0].endswith(f"img/{expected.indices[0, 0]:05d}.jpg")


def test_shards_that_do_not_fit_together_are_refused(features, built, tmp_path):
    _, shards = built
    folders = [load_index_folder(s) for s in shards]
    with pytest.raises(IndexInputError, match="missing"):
        merge_index_folders([f for f in folders if f.meta["rows"][1] != ROWS])
    with pytest.raises(IndexInputError, match="rows 0-333 are in none"):
        search_folders([f for f in folders if f.meta["rows"][0] != 0],
                       load_feature_set(str(features / "query.npz")))
    other = _build(features, tmp_path / "other", "--index-factory", folders[0].meta["factory"],
                   "--train-only", "--seed", "7", "--train-sample", "600")
    stranger = _build(features, tmp_path / "s0", "--trained", other, "--shard", f"0/{SHARDS}")
    with pytest.raises(IndexInputError, match="different trained indexes"):
        merge_index_folders([load_index_folder(stranger)] + folders[1:])


def test_a_shard_without_the_trained_index_is_refused(features, tmp_path, capsys):
    assert run_tool("build_index", ["--gallery", features / "gallery.npz", "--index-factory",
                                    "IVF8,Flat", "--shard", "0/2", "--output",
                                    tmp_path / "s"]) == 2
    assert "needs --trained" in capsys.readouterr().err
    assert run_tool("build_index", ["--gallery", features / "gallery.npz", "--index-factory",
                                    "Flat", "--shard", "2/2", "--output", tmp_path / "s"]) == 2
    assert "i must lie in [0, n)" in capsys.readouterr().err
