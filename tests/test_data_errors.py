"""Data the user has to fix: clear errors (missing or misplaced datasets, too few identities),
unreadable images screened out with a count, or refused on request."""
import os
import subprocess
import sys

import pytest

import fastreid.data.build as data_build
from sfsc.data import DatasetError, SyntheticReIDTiny
from sfsc.data.loaders import build_test_loader, build_train_loader, image_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cfg(sfsc_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(data_build, "_root", str(tmp_path))
    sfsc_cfg.DATASETS.NAMES = ("SyntheticReIDTiny",)
    sfsc_cfg.DATASETS.TESTS = ("SyntheticReIDTiny",)
    sfsc_cfg.SOLVER.IMS_PER_BATCH = 16
    sfsc_cfg.DATALOADER.NUM_INSTANCE = 4
    sfsc_cfg.SEED = 0
    return sfsc_cfg


def test_missing_dataset_names_the_folder_and_fastreid_datasets(cfg, tmp_path):
    cfg.DATASETS.NAMES = ("Market1501",)
    with pytest.raises(DatasetError) as e:
        build_train_loader(cfg)
    msg = str(e.value)
    assert "FASTREID_DATASETS" in msg and str(tmp_path) in msg
    assert os.path.join(str(tmp_path), "Market-1501-v15.09.15") in msg


def test_wrong_layout_is_named(cfg, tmp_path):
    for sub in ("bounding_box_train", "query", "bounding_box_test"):  # right folders, no images
        os.makedirs(tmp_path / "Market-1501-v15.09.15" / sub)
    (tmp_path / "Market-1501-v15.09.15" / "bounding_box_train" / "IMG_0001.jpg").write_bytes(b"x")
    cfg.DATASETS.NAMES = ("Market1501",)
    with pytest.raises(DatasetError, match="does not follow its naming"):
        build_train_loader(cfg)
    os.remove(tmp_path / "Market-1501-v15.09.15" / "bounding_box_train" / "IMG_0001.jpg")
    with pytest.raises(DatasetError, match="train set holds no images"):
        build_train_loader(cfg)


def test_unknown_dataset_suggests_the_closest_name(cfg):
    cfg.DATASETS.NAMES = ("Market1051",)
    with pytest.raises(DatasetError, match="Did you mean 'Market1501'"):
        build_train_loader(cfg)


def test_too_few_identities_for_the_sampler(cfg):
    cfg.SOLVER.IMS_PER_BATCH = 256  # 64 identities per batch; the tiny set has 32
    with pytest.raises(DatasetError, match="32 identities.*draws 64 per batch"):
        build_train_loader(cfg)


def _damage(folder):
    """Zero-byte, truncated and not-an-image files in place of three train images."""
    train = sorted(os.listdir(os.path.join(folder, "bounding_box_train")))
    paths = [os.path.join(folder, "bounding_box_train", n) for n in train[:3]]
    open(paths[0], "wb").close()
    with open(paths[1], "rb") as f:
        data = f.read()
    with open(paths[1], "wb") as f:
        f.write(data[: len(data) // 2])
    with open(paths[2], "w") as f:
        f.write("not an image")
    return paths


def test_unreadable_images_are_skipped_and_counted(cfg, tmp_path, caplog):
    dataset = SyntheticReIDTiny(root=str(tmp_path))
    n_train = len(dataset.train)
    paths = _damage(dataset.dataset_dir)
    assert [image_problem(p) is not None for p in paths] == [True] * 3

    from sfsc.data import loaders

    kept = loaders.screen_images(dataset.train, "tiny train", "skip")
    assert len(kept) == n_train - 3 and not {p for p, *_ in kept} & set(paths)
    assert "Skipped 3 unreadable images of" in caplog.text
    with pytest.raises(DatasetError, match="3 of .* images of tiny train cannot be read"):
        loaders.screen_images(dataset.train, "tiny train", "fail")


def test_screening_opens_an_unchanged_image_once(cfg, tmp_path, monkeypatch):
    from sfsc.data import loaders

    dataset = SyntheticReIDTiny(root=str(tmp_path))
    opened = []
    check = loaders.image_problem
    monkeypatch.setattr(loaders, "image_problem", lambda p: opened.append(p) or check(p))
    assert len(loaders.screen_images(dataset.query, "q", "fail")) == len(dataset.query)
    assert len(opened) == len(dataset.query)
    opened.clear()
    loaders.screen_images(dataset.query, "q", "fail")  # a later evaluation: nothing reopened
    assert opened == []
    open(dataset.query[0][0], "wb").close()  # changed since: checked again, and caught
    with pytest.raises(DatasetError, match="1 of"):
        loaders.screen_images(dataset.query, "q", "fail")
    assert opened == [dataset.query[0][0]]


def test_loaders_screen_every_split(cfg, tmp_path, caplog):
    dataset = SyntheticReIDTiny(root=str(tmp_path))
    n_train, n_test = len(dataset.train), len(dataset.query) + len(dataset.gallery)
    gallery = sorted(os.listdir(os.path.join(dataset.dataset_dir, "bounding_box_test")))
    open(os.path.join(dataset.dataset_dir, "bounding_box_test", gallery[-1]), "wb").close()
    _damage(dataset.dataset_dir)
    # The generator would repair the folder: load it under FastReID's Market-1501 parser.
    os.rename(dataset.dataset_dir, tmp_path / "Market-1501-v15.09.15")
    cfg.DATASETS.NAMES = ("Market1501",)
    cfg.DATASETS.TESTS = ("Market1501",)
    loader = build_train_loader(cfg)
    assert len(loader.dataset) == n_train - 3
    test_loader, _ = build_test_loader(cfg, "Market1501")
    assert len(test_loader.dataset) == n_test - 1
    batch = next(iter(loader))
    assert batch["images"].shape[0] == 16
    cfg.SFSC.DATA.BAD_IMAGES = "fail"
    with pytest.raises(DatasetError, match="SFSC.DATA.BAD_IMAGES skip"):
        build_train_loader(cfg)


def test_cli_reports_a_missing_dataset_without_a_traceback(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"earlier result")
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path / "nowhere"))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
         os.path.join(ROOT, "configs", "Market1501", "sfsc_R18.yml"), "MODEL.DEVICE", "cpu",
         "MODEL.BACKBONE.PRETRAIN", "False", "OUTPUT_DIR", str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: Dataset Market1501" in proc.stderr and "FASTREID_DATASETS" in proc.stderr
    assert (out / "model_final.pth").read_bytes() == b"earlier result"
