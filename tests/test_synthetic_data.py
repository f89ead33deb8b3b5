"""Synthetic ReID data: determinism, Market-1501 layout, splits, FastReID loading, races, signal."""
from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing as mp
import os
from collections import defaultdict
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image

import sfsc
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.market1501 import Market1501
from fastreid.evaluation.rank import evaluate_rank
from sfsc.data import SYNTHETIC_REID_TINY, SyntheticReIDTiny, parse_name
from sfsc.data.synthetic import ensure_synthetic_reid, generate_synthetic_reid, read_manifest

# A few identities only: for tests that generate several folders.
MINI = dataclasses.replace(SYNTHETIC_REID_TINY, num_train_ids=4, num_test_ids=4,
                           num_distractors=2)
SUBSETS = ("bounding_box_train", "query", "bounding_box_test")


def _hashes(folder: str) -> Dict[str, str]:
    out = {}
    for sub in SUBSETS:
        for name in os.listdir(os.path.join(folder, sub)):
            with open(os.path.join(folder, sub, name), "rb") as f:
                out[f"{sub}/{name}"] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SyntheticReIDTiny:
    root = tmp_path_factory.mktemp("datasets")
    return DATASET_REGISTRY.get("SyntheticReIDTiny")(root=str(root))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    generate_synthetic_reid(str(tmp_path / "a"), MINI, seed=3)
    generate_synthetic_reid(str(tmp_path / "b"), MINI, seed=3)
    generate_synthetic_reid(str(tmp_path / "c"), MINI, seed=4)
    a, b, c = (_hashes(str(tmp_path / x)) for x in "abc")
    assert a == b and len(a) > 0
    assert set(a.values()).isdisjoint(c.values())


def test_market1501_layout_and_names(tiny):
    root = tiny.dataset_dir
    assert os.path.basename(root) == "SyntheticReIDTiny"
    assert sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) == \
        sorted(SUBSETS)
    for sub in SUBSETS:
        for name in os.listdir(os.path.join(root, sub)):
            pid, cam, seq, frame, box = parse_name(name)
            assert 1 <= cam <= 6 and 1 <= seq <= 6 and box >= 1
    # FastReID's own Market-1501 parser reads the same pids and cameras.
    for items, sub, is_train in ((tiny.train, "bounding_box_train", True),
                                 (tiny.query, "query", False),
                                 (tiny.gallery, "bounding_box_test", False)):
        market = Market1501.process_dir(tiny, os.path.join(root, sub), is_train=is_train)
        assert sorted(items) == sorted(market)
    path, pid, camid = tiny.train[0]
    assert pid.startswith("synthreidtiny_") and camid.startswith("synthreidtiny_")
    img = Image.open(path)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 128)
    with pytest.raises(ValueError):
        parse_name("0001_c1_000001.jpg")


def test_splits_counts_and_cross_camera_matches(tiny):
    p = SYNTHETIC_REID_TINY
    train_pids = {int(pid.split("_")[1]) for _, pid, _ in tiny.train}
    query_pids = {pid for _, pid, _ in tiny.query}
    gallery_pids = {pid for _, pid, _ in tiny.gallery}
    assert len(train_pids) == p.num_train_ids and len(query_pids) == p.num_test_ids
    assert train_pids.isdisjoint(query_pids | gallery_pids)
    assert gallery_pids == query_pids | {0}
    assert sum(pid == 0 for _, pid, _ in tiny.gallery) == p.num_distractors
    manifest = read_manifest(tiny.dataset_dir)
    assert manifest["counts"] == {"bounding_box_train": len(tiny.train), "query": len(tiny.query),
                                  "bounding_box_test": len(tiny.gallery)}
    n_test = len(tiny.query) + len(tiny.gallery) - p.num_distractors
    lo, hi = p.images_per_id
    assert lo * p.num_test_ids <= n_test <= hi * p.num_test_ids
    cams = defaultdict(set)
    for _, pid, camid in tiny.gallery:
        cams[pid].add(camid)
    per_pid_cam = defaultdict(int)
    for _, pid, camid in tiny.query:
        per_pid_cam[pid, camid] += 1
        assert cams[pid] - {camid}, f"query of pid {pid} has no match in another camera"
    assert set(per_pid_cam.values()) == {p.queries_per_camera}
    assert all(len(c) >= 2 for pid, c in cams.items() if pid != 0)
    train_cams = defaultdict(set)
    for _, pid, camid in tiny.train:
        train_cams[pid].add(camid)
    assert min(len(c) for c in train_cams.values()) >= p.cameras_per_id[0]


def test_reuse_and_regenerate_on_other_parameters(tmp_path):
    folder = str(tmp_path / "mini")
    ensure_synthetic_reid(folder, MINI, seed=0)
    stamp = os.path.getmtime(os.path.join(folder, "manifest.json"))
    ensure_synthetic_reid(folder, MINI, seed=0)
    assert os.path.getmtime(os.path.join(folder, "manifest.json")) == stamp
    ensure_synthetic_reid(folder, MINI, seed=1)
    assert read_manifest(folder)["seed"] == 1
    os.remove(os.path.join(folder, "query", sorted(os.listdir(os.path.join(folder, "query")))[0]))
    ensure_synthetic_reid(folder, MINI, seed=1)  # an incomplete folder is regenerated
    n_query = read_manifest(folder)["counts"]["query"]
    assert len(os.listdir(os.path.join(folder, "query"))) == n_query
    assert sorted(os.listdir(tmp_path)) == ["mini"]  # no temporary or stale folders left


def _generate_after(barrier, folder: str) -> None:
    barrier.wait()
    ensure_synthetic_reid(folder, MINI, seed=5)


def test_concurrent_generation_yields_one_valid_folder(tmp_path):
    folder = str(tmp_path / "race")
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_generate_after, args=(barrier, folder)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert sorted(os.listdir(tmp_path)) == ["race"]
    generate_synthetic_reid(str(tmp_path / "serial"), MINI, seed=5)
    assert _hashes(folder) == _hashes(str(tmp_path / "serial"))
    assert read_manifest(folder)["seed"] == 5


def test_fastreid_loaders(tiny, monkeypatch):
    from fastreid.config import get_cfg
    from fastreid.data import build as data_build

    # FastReID reads FASTREID_DATASETS once, at import.
    monkeypatch.setattr(data_build, "_root", tiny.root)
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.DATASETS.NAMES = ("SyntheticReIDTiny",)
    cfg.DATASETS.TESTS = ("SyntheticReIDTiny",)
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.SIZE_TEST = [32, 16]
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
    cfg.DATALOADER.NUM_INSTANCE = 4
    cfg.SOLVER.IMS_PER_BATCH = 16
    cfg.TEST.IMS_PER_BATCH = 64
    train_loader = data_build.build_reid_train_loader(cfg)
    assert train_loader.dataset.num_classes == SYNTHETIC_REID_TINY.num_train_ids
    batch = next(iter(train_loader))
    assert batch["images"].shape == (16, 3, 32, 16)
    assert len(set(batch["targets"].tolist())) == 4  # 4 identities x 4 instances
    test_loader, num_query = data_build.build_reid_test_loader(cfg,
                                                               dataset_name="SyntheticReIDTiny")
    assert num_query == len(tiny.query)
    n = sum(len(b["targets"]) for b in test_loader)
    assert n == len(tiny.query) + len(tiny.gallery)


def _colour_histograms(items, grey_world: bool) -> torch.Tensor:
    feats = []
    for path, _, _ in items:
        x = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
        if grey_world:  # divides out a per-channel camera cast
            x = np.clip(x / (x.reshape(-1, 3).mean(0) + 1e-6) * 128, 0, 255)
        h, w, _ = x.shape
        x = (x[h // 8:-h // 8, w // 4:-w // 4] // 32).astype(int)  # centre: mostly the person
        hist = np.bincount((x[..., 0] * 64 + x[..., 1] * 8 + x[..., 2]).ravel(), minlength=512)
        feats.append(np.sqrt(hist / hist.sum()))  # Hellinger: cosine of sqrt-histograms
    return torch.nn.functional.normalize(torch.tensor(np.stack(feats), dtype=torch.float32), dim=1)


def _map(sim: np.ndarray, tiny) -> float:
    q_pids = np.array([p for _, p, _ in tiny.query])
    g_pids = np.array([p for _, p, _ in tiny.gallery])
    q_cams = np.array([c for _, _, c in tiny.query])
    g_cams = np.array([c for _, _, c in tiny.gallery])
    _, aps, _ = evaluate_rank(1 - sim, q_pids, g_pids, q_cams, g_cams, use_cython=False)
    return float(np.mean(aps))


def test_identity_signal_exists_but_cameras_hide_it_from_colour_histograms(tiny):
    """Identities carry colour information (a camera-normalised histogram finds it), yet cameras
    change colours enough that raw histograms sit at chance: a model must learn invariance."""
    chance = _map(np.random.default_rng(0).random((len(tiny.query), len(tiny.gallery))), tiny)
    raw = _map((_colour_histograms(tiny.query, False)
                @ _colour_histograms(tiny.gallery, False).t()).numpy(), tiny)
    normalised = _map((_colour_histograms(tiny.query, True)
                       @ _colour_histograms(tiny.gallery, True).t()).numpy(), tiny)
    assert raw < 1.5 * chance, (raw, chance)
    assert 1.5 * chance < normalised < 0.5, (normalised, chance)
