"""Market-1501, MSMT17 and VeRi-776 in their real layouts: FastReID's own classes read the tiny
fixtures, and the repository's configs train and evaluate on them end to end."""
from __future__ import annotations

import os

import pytest
from dataset_fixtures import (
    build_market1501,
    build_msmt17,
    build_veri,
    check_training_outputs,
    train_tiny,
)

import sfsc  # noqa: F401  (before FastReID: compatibility patches)
from fastreid.data.datasets import DATASET_REGISTRY

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
