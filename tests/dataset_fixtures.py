"""Tiny data sets in the exact layouts FastReID's Market1501, MSMT17 and VeRi classes read, and in
CustomReID's CSV and folder formats, with small JPEG images coloured per identity."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

__all__ = ["Counts", "person_image", "build_market1501", "build_msmt17", "build_veri",
           "build_custom_csv", "build_custom_folder", "tiny_cfg", "train_tiny",
           "check_training_outputs", "IMAGE_SIZE"]

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
IMAGE_SIZE = (64, 32)  # (h, w)
TRAIN_IDS, TEST_IDS = 8, 6
# Training images per identity and camera (2 cameras): 64 images, 4 batches of 16. FastReID's
# metric printer divides by zero in runs shorter than its 3-iteration timer warm-up.
PER_CAMERA = 4


@dataclass(frozen=True)
class Counts:
    """What a data set class should read from a fixture."""

    path: str  # the folder (or CSV file) to hand to the data set class
    train_ids: int
    train: int
    query: int
    gallery: int


def person_image(pid: int, cam: int, index: int, salt: int = 0) -> Image.Image:
    """A person-like figure whose shirt / trousers colours depend on ``pid`` (and ``salt``)."""
    h, w = IMAGE_SIZE
    who = np.random.default_rng([salt, pid])
    shirt, trousers = who.integers(30, 226, size=(2, 3))
    rng = np.random.default_rng([salt, pid, cam, index])
    img = np.empty((h, w, 3), np.float32)
    img[:] = 110 + 25 * ((np.arange(3) + cam) % 3)  # each camera tints the background
    x0 = 8 + int(rng.integers(-2, 3))
    y0 = 4 + int(rng.integers(-2, 3))
    img[y0:y0 + 10, x0 + 4:x0 + 12] = (224, 184, 150)  # head
    img[y0 + 10:y0 + 32, x0:x0 + 16] = shirt
    img[y0 + 32:y0 + 56, x0 + 1:x0 + 15] = trousers
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _save(path: str, pid: int, cam: int, index: int, salt: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    person_image(pid, cam, index, salt).save(path, quality=90)
    return path


def _cameras(k: int, num_cams: int) -> Tuple[int, int]:
    """Two distinct 1-based cameras for the k-th identity."""
    a = k % num_cams + 1
    return a, (k + 1) % num_cams + 1


def build_market1501(root: str) -> Counts:
    """``<root>/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}``.

    Names ``PPPP_cCsS_FFFFFF_BB.jpg``; the gallery also holds background (pid 0000, read) and
    junk (pid -1, skipped) images like the real set.
    """
    base = os.path.join(root, "Market-1501-v15.09.15")
    salt = 1501
    train_pids = [2, 7, 10, 11, 12, 20, 22, 23]
    test_pids = [1, 3, 5, 6, 8, 9]

    def name(pid: int, cam: int, frame: int, box: int = 1) -> str:
        label = "-1" if pid < 0 else f"{pid:04d}"
        return f"{label}_c{cam}s1_{frame:06d}_{box:02d}.jpg"

    frame = 100
    for k, pid in enumerate(train_pids):
        for cam in _cameras(k, 6):
            for i in range(PER_CAMERA):
                frame += 25
                _save(os.path.join(base, "bounding_box_train", name(pid, cam, frame)),
                      pid, cam, i, salt)
    gallery = 0
    for k, pid in enumerate(test_pids):
        qcam, gcam = _cameras(k, 6)
        frame += 25
        _save(os.path.join(base, "query", name(pid, qcam, frame)), pid, qcam, 0, salt)
        # Same identity, same camera: ignored when ranking; two from another camera match.
        for cam, i in ((qcam, 1), (gcam, 2), (gcam, 3)):
            frame += 25
            _save(os.path.join(base, "bounding_box_test", name(pid, cam, frame)),
                  pid, cam, i, salt)
            gallery += 1
    for pid in (0, -1):
        for cam in (1, 2):
            frame += 25
            _save(os.path.join(base, "bounding_box_test", name(pid, cam, frame, box=2)),
                  1000 + pid, cam, 0, salt)
    gallery += 2  # the background images; the junk ones are skipped
    return Counts(root, TRAIN_IDS, TRAIN_IDS * 2 * PER_CAMERA, TEST_IDS, gallery)


def build_msmt17(root: str, version: str = "MSMT17_V2") -> Counts:
    """``<root>/<version>/`` with its image folders and list_{train,val,query,gallery}.txt.

    ``version`` MSMT17_V2 (folders mask_train_v2 / mask_test_v2) or MSMT17_V1 (train / test).
    List lines are ``<pid>/<pid>_<index>_<camera>_<date><time>_<frame>_<n>.jpg <pid>``; train
    and test identities are each numbered from 0, as in the real lists.
    """
    train_dir, test_dir = {"MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
                           "MSMT17_V1": ("train", "test")}[version]
    base = os.path.join(root, version)
    salt = 17

    def add(lines: List[str], folder: str, pid: int, index: int, cam: int, salt_: int) -> None:
        rel = f"{pid:04d}/{pid:04d}_{index:03d}_{cam:02d}_0303morning_{10 + 7 * index:04d}_0.jpg"
        _save(os.path.join(base, folder, rel), pid, cam, index, salt_)
        lines.append(f"{rel} {pid}\n")

    lists: Dict[str, List[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    for pid in range(TRAIN_IDS):
        index = 0
        for cam in _cameras(pid, 15):
            for _ in range(PER_CAMERA):
                add(lists["train"], train_dir, pid, index, cam, salt)
                index += 1
        if pid % 2 == 0:  # validation images: in the train folder, not in list_train.txt
            add(lists["val"], train_dir, pid, index, _cameras(pid, 15)[0], salt)
    for pid in range(TEST_IDS):
        qcam, gcam = _cameras(pid, 15)
        add(lists["query"], test_dir, pid, 0, qcam, salt + 1)
        for index, cam in ((1, qcam), (2, gcam), (3, gcam)):
            add(lists["gallery"], test_dir, pid, index, cam, salt + 1)
    for split, lines in lists.items():
        with open(os.path.join(base, f"list_{split}.txt"), "w") as f:
            f.writelines(lines)
    return Counts(root, TRAIN_IDS, len(lists["train"]), len(lists["query"]),
                  len(lists["gallery"]))


def build_veri(root: str) -> Counts:
    """``<root>/veri/{image_train,image_query,image_test}``, names ``PPPP_cCCC_FFFFFFFF_N.jpg``.

    FastReID's VeRi class reads the lower-case folder ``veri``. As in the real set, every query
    image is also in image_test (same identity and camera: ignored when ranking).
    """
    base = os.path.join(root, "veri")
    salt = 776
    frame = 16450

    def save(folder: str, pid: int, cam: int, index: int) -> str:
        nonlocal frame
        frame += 35
        return _save(os.path.join(base, folder, f"{pid:04d}_c{cam:03d}_{frame:08d}_0.jpg"),
                     pid, cam, index, salt)

    for k, pid in enumerate(range(1, 2 * TRAIN_IDS, 2)):
        for cam in _cameras(k, 20):
            for i in range(PER_CAMERA):
                save("image_train", pid, cam, i)
    for k, pid in enumerate(range(2, 2 * TEST_IDS + 1, 2)):
        qcam, gcam = _cameras(k, 20)
        query = save("image_query", pid, qcam, 0)
        target = os.path.join(base, "image_test", os.path.basename(query))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.open(query).save(target, quality=90)
        for i in (1, 2):
            save("image_test", pid, gcam, i)
    return Counts(root, TRAIN_IDS, TRAIN_IDS * 2 * PER_CAMERA, TEST_IDS, 3 * TEST_IDS)


def _custom_items(salt: int) -> List[Tuple[str, str, str, str, int, int, int]]:
    """(split, pid label, camid label, file stem, pid, camera, index) of a custom data set.

    Training labels are names (any text works); query / gallery labels are integers.
    """
    rows = []
    for k in range(TRAIN_IDS):
        for cam in _cameras(k, 4):
            for i in range(PER_CAMERA):
                rows.append(("train", f"person_{k}", f"cam{cam}", f"p{k}_c{cam}_{i}", k, cam, i))
    for k in range(TEST_IDS):
        pid = 100 + k
        qcam, gcam = _cameras(k, 4)
        rows.append(("query", str(pid), str(qcam), f"q{pid}_c{qcam}", pid, qcam, 0))
        for i in (1, 2):
            rows.append(("gallery", str(pid), str(gcam), f"g{pid}_c{gcam}_{i}", pid, gcam, i))
    return rows


def build_custom_csv(root: str, name: str = "custom_csv") -> Counts:
    """``<root>/<name>/data.csv`` (path,pid,camid,split) and its images under ``images/``.

    Image paths are relative to the CSV's folder except for the gallery's, which are absolute;
    ``Counts.path`` is the CSV file relative to ``root``.
    """
    base = os.path.join(root, name)
    salt = 42
    with open(os.path.join(_mkdir(base), "data.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "pid", "camid", "split"])
        for split, pid_label, cam_label, stem, pid, cam, i in _custom_items(salt):
            rel = os.path.join("images", split, f"{stem}.jpg")
            _save(os.path.join(base, rel), pid, cam, i, salt)
            path = os.path.abspath(os.path.join(base, rel)) if split == "gallery" else rel
            out.writerow([path, pid_label, cam_label, split])
    return Counts(os.path.join(name, "data.csv"), TRAIN_IDS, TRAIN_IDS * 2 * PER_CAMERA,
                  TEST_IDS, 2 * TEST_IDS)


def build_custom_folder(root: str, name: str = "custom_folder") -> Counts:
    """``<root>/<name>/<split>/<pid>/<camid>/<image>``; ``Counts.path`` is relative to root."""
    base = os.path.join(root, name)
    salt = 43
    for split, pid_label, cam_label, stem, pid, cam, i in _custom_items(salt):
        _save(os.path.join(base, split, pid_label, cam_label, f"{stem}.jpg"), pid, cam, i, salt)
    return Counts(name, TRAIN_IDS, TRAIN_IDS * 2 * PER_CAMERA, TEST_IDS, 2 * TEST_IDS)


def _mkdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def tiny_cfg(config: str, output_dir: str, *opts: str):
    """A repository config shrunk to a few CPU seconds of training (frozen)."""
    import sfsc
    from fastreid.config import get_cfg

    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, config))
    cfg.merge_from_list([
        "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]", "INPUT.PADDING.SIZE", "2",
        "SOLVER.IMS_PER_BATCH", "16", "DATALOADER.NUM_INSTANCE", "4",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1", "SOLVER.AMP.ENABLED", "False",
        "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1", "TEST.IMS_PER_BATCH", "32",
        "MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False", "SFSC.LOG_PERIOD", "1",
        "OUTPUT_DIR", output_dir, "SEED", "0", *opts])
    cfg.freeze()
    return cfg


def train_tiny(config: str, output_dir: str, *opts: str) -> str:
    """Train one epoch with ``tiny_cfg(config, output_dir, *opts)``; returns output_dir."""
    from sfsc.engine import SFSCTrainer

    cfg = tiny_cfg(config, output_dir, *opts)
    os.makedirs(output_dir, exist_ok=True)
    trainer = SFSCTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return output_dir


def check_training_outputs(output_dir: str) -> np.ndarray:
    """Assert a finished run's files: model_final.pth and a 4x4 mAP matrix in [0, 100]."""
    import json

    assert os.path.isfile(os.path.join(output_dir, "model_final.pth"))
    with open(os.path.join(output_dir, "compatibility.json")) as f:
        result = json.load(f)
    assert result["widths"] == [0.25, 0.5, 0.75, 1.0]
    mAP = np.asarray(result["mAP"], dtype=float)
    assert mAP.shape == (4, 4)
    assert np.isfinite(mAP).all() and (mAP >= 0).all() and (mAP <= 100).all()
    return mAP
