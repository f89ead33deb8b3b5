"""CustomReID: the CSV and folder formats, training on them, and errors that name what to fix."""
from __future__ import annotations

import os

import pytest
from dataset_fixtures import (
    build_custom_csv,
    build_custom_folder,
    check_training_outputs,
    person_image,
    train_tiny,
)

import sfsc  # noqa: F401  (before FastReID: compatibility patches)
from fastreid.data.datasets import DATASET_REGISTRY
from sfsc.data import CustomReID, DatasetError


def _labels(items):
    return sorted((pid, camid) for _, pid, camid in items)


@pytest.mark.parametrize("build", [build_custom_csv, build_custom_folder], ids=["csv", "folder"])
def test_formats_parse_to_the_listed_items(tmp_path, build):
    counts = build(str(tmp_path))
    data = DATASET_REGISTRY.get("CustomReID")(root=str(tmp_path), path=counts.path)
    assert data.get_num_pids(data.train) == counts.train_ids
    assert (len(data.train), len(data.query), len(data.gallery)) == \
        (counts.train, counts.query, counts.gallery)
    assert ("custom_person_0", "custom_cam1") in _labels(data.train)
    assert all(isinstance(p, int) and isinstance(c, int) for _, p, c in data.query + data.gallery)
    assert {p for _, p, _ in data.query} == set(range(100, 106))
    assert all(os.path.isfile(path) for path, _, _ in data.train + data.query + data.gallery)
    # An absolute path works as well as one relative to the dataset root.
    same = CustomReID(root="/nonexistent", path=str(tmp_path / counts.path))
    assert _labels(same.train) == _labels(data.train)
    assert sorted(same.query) == sorted(data.query)


def test_csv_and_folder_describe_the_same_labels(tmp_path):
    a = CustomReID(root=str(tmp_path), path=build_custom_csv(str(tmp_path)).path)
    b = CustomReID(root=str(tmp_path), path=build_custom_folder(str(tmp_path)).path)
    for split in ("train", "query", "gallery"):
        assert _labels(getattr(a, split)) == _labels(getattr(b, split))


def test_config_kwargs_name_the_path(sfsc_cfg):
    sfsc_cfg.SFSC.DATA.CUSTOM_PATH = "mine/data.csv"
    assert CustomReID.config_kwargs(sfsc_cfg) == {"path": "mine/data.csv"}


def test_trains_and_evaluates_on_a_folder(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    counts = build_custom_folder(str(root))
    monkeypatch.setattr("fastreid.data.build._root", str(root))
    out = train_tiny("Base-SFSC.yml", str(tmp_path / "run"),
                     "DATASETS.NAMES", '("CustomReID",)', "DATASETS.TESTS", '("CustomReID",)',
                     "SFSC.DATA.CUSTOM_PATH", counts.path)
    check_training_outputs(out)


# ---- errors -------------------------------------------------------------------------------

@pytest.fixture
def image(tmp_path) -> str:
    """One real image, images/a.jpg, next to where the CSV files of the error tests go."""
    os.makedirs(tmp_path / "images")
    person_image(1, 1, 0).save(tmp_path / "images" / "a.jpg")
    return "images/a.jpg"


def _csv(tmp_path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def _error(root, path: str) -> str:
    with pytest.raises(DatasetError) as e:
        CustomReID(root=str(root), path=path)
    return str(e.value)


def test_empty_path_asks_for_the_config_key(tmp_path):
    assert "set SFSC.DATA.CUSTOM_PATH" in _error(tmp_path, "")


def test_missing_path_names_the_resolved_path(tmp_path):
    msg = _error(tmp_path, "nowhere/data.csv")
    assert repr(str(tmp_path / "nowhere" / "data.csv")) in msg and "FASTREID_DATASETS" in msg


@pytest.mark.parametrize("text,line,words", [
    ("file,pid,camid,split\n{img},1,1,train\n", 1, "header"),
    ("", 1, "header"),
    ("path,pid,camid,split\n{img},1,1,train\n{img},1,train\n", 3, "3 fields"),
    ("path,pid,camid,split\n{img},1,1,training\n", 2, "unknown split 'training'"),
    ("path,pid,camid,split\n{img},1,1,train\n\n{img},x,1,query\n", 4, "integer pid"),
    ("path,pid,camid,split\n{img},1,c2,gallery\n", 2, "integer camid"),
    ("path,pid,camid,split\n{img},,1,train\n", 2, "empty pid"),
    ("path,pid,camid,split\nimages/b.jpg,1,1,train\n", 2, "b.jpg"),
], ids=["header", "empty-file", "row", "split", "pid", "camid", "empty-cell", "missing-image"])
def test_csv_errors_name_the_file_and_line(tmp_path, image, text, line, words):
    csv_path = _csv(tmp_path, text.format(img=image))
    msg = _error(tmp_path, "data.csv")
    assert f"{csv_path!r}, line {line}" in msg and words in msg


def test_csv_columns_may_come_in_any_order_with_extras(tmp_path, image):
    _csv(tmp_path, f"split,camid,note,pid,path\ntrain,2,front door,7,{image}\n")
    (item,) = CustomReID(root=str(tmp_path), path="data.csv").train
    assert item == (str(tmp_path / image), "custom_7", "custom_2")


def test_binary_file_is_not_taken_for_a_csv(tmp_path, image):
    assert "not a UTF-8 text file" in _error(tmp_path, image)


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_an_empty_split_is_reported_when_used(tmp_path, image, split):
    rows = [f"{image},1,{cam},{s}" for s, cam in (("train", 1), ("query", 1), ("gallery", 2))
            if s != split]
    csv_path = _csv(tmp_path, "path,pid,camid,split\n" + "\n".join(rows) + "\n")
    data = CustomReID(root=str(tmp_path), path="data.csv")  # a test-only set is fine ...
    with pytest.raises(DatasetError, match=f"no {split} images") as e:
        getattr(data, split)  # ... until its train set is used
    assert repr(csv_path) in str(e.value)


def test_folder_errors_name_the_folder(tmp_path):
    counts = build_custom_folder(str(tmp_path))
    base = tmp_path / counts.path
    os.rename(base / "query", base / "val")
    msg = _error(tmp_path, counts.path)
    assert repr(str(base / "val")) in msg and "train, query, gallery" in msg

    os.rename(base / "val", base / "query")
    stray = base / "train" / "person_0" / "x.jpg"
    person_image(0, 1, 9).save(stray)
    msg = _error(tmp_path, counts.path)
    assert repr(str(stray)) in msg and "camera folder" in msg

    stray.unlink()
    os.rename(base / "gallery" / "100", base / "gallery" / "p100")
    msg = _error(tmp_path, counts.path)
    assert "integer pid" in msg and "p100" in msg

    os.rename(base / "gallery" / "p100", base / "gallery" / "100")
    for name in os.listdir(base / "gallery"):
        os.rename(base / "gallery" / name, tmp_path / f"gallery_{name}")
    with pytest.raises(DatasetError, match="no gallery images") as e:
        _ = CustomReID(root=str(tmp_path), path=counts.path).gallery
    assert repr(str(base / "gallery")) in str(e.value)
