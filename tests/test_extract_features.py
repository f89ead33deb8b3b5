"""tools/extract_features.py: folders and lists of images, exported vs switchable, bad files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_models import make_output_dir, run_tool, tiny_cfg
from PIL import Image

from fastreid.data.transforms import build_transforms
from sfsc.deploy import Preprocessing, export_submodel, image_to_input, load_rgb, load_switchable
from sfsc.deploy.image_sources import list_images

READABLE = ["a.jpg", "b.JPEG", "c.png", "sub/d_gray.png", "sub/e_rgba.png"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images of several sizes and modes, a corrupt .jpg and a file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(READABLE):
        h, w = 40 + 9 * i, 17 + 5 * i
        mode = "L" if "gray" in name else "RGBA" if "rgba" in name else "RGB"
        channels = {"L": (), "RGBA": (4,), "RGB": (3,)}[mode]
        array = rng.integers(0, 256, (h, w, *channels), dtype=np.uint8)
        Image.fromarray(array, mode).save(folder / name, format="JPEG" if "jp" in name.lower()
                                          else "PNG")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained-looking output folder and its 0.25 width exported; (model dir, stem)."""
    folder = tmp_path_factory.mktemp("model")
    make_output_dir(tiny_cfg(size=(48, 24)), str(folder))
    export_submodel(load_switchable(str(folder)), 0.25, str(folder / "export"), name="w025")
    return folder, folder / "export" / "w025"


def test_folders_are_listed_recursively_and_sorted(images):
    names = [name for name, _ in list_images(str(images))]
    assert names == sorted(READABLE + ["broken.jpg"])


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # inside FastReID's ToTensor
def test_recorded_preprocessing_equals_fastreid_test_transforms(images):
    cfg = tiny_cfg(size=(48, 24))
    transforms = build_transforms(cfg, is_train=False)
    spec = Preprocessing.from_cfg(cfg)
    for name in READABLE:
        image = load_rgb(str(images / name))
        ours = image_to_input(image, spec)
        assert ours.shape == (3, 48, 24) and ours.dtype == np.float32
        assert np.array_equal(ours, transforms(image).numpy()), name


def _index(path):
    with open(path) as f:
        return json.load(f)


def test_exported_and_switchable_features_agree(images, exported, tmp_path):
    model_dir, stem = exported
    runs = {"ckpt": ["--model-dir", model_dir, "--width", "0.25"],
            "onnx": ["--exported", f"{stem}.onnx"], "pt": ["--exported", f"{stem}.pt"]}
    feats = {}
    for key, args in runs.items():
        assert run_tool("extract_features", [images, "--output", tmp_path / key,
                                             "--batch-size", "2", *args]) == 0
        feats[key] = np.load(tmp_path / f"{key}.npy")
        index = _index(tmp_path / f"{key}.json")
        assert index["files"] == sorted(READABLE)
        assert [s["file"] for s in index["skipped"]] == ["broken.jpg"]
        assert index["shape"] == [5, 32] and index["l2_normalized"]
        assert index["preprocessing"]["height"] == 48
        assert index["model"]["width"] == 0.25
    assert _index(tmp_path / "ckpt.json")["model"]["kind"] == "switchable"
    assert _index(tmp_path / "onnx.json")["model"]["kind"] == "onnx"
    assert feats["ckpt"].dtype == np.float32 and feats["ckpt"].shape == (5, 32)
    assert np.allclose(np.linalg.norm(feats["ckpt"], axis=1), 1, atol=1e-6)
    assert np.abs(feats["onnx"] - feats["ckpt"]).max() <= 1e-5
    assert np.abs(feats["pt"] - feats["ckpt"]).max() <= 1e-5


def test_strict_fails_on_the_unreadable_image(images, exported, tmp_path, capsys):
    _, stem = exported
    argv = [images, "--output", tmp_path / "f", "--exported", f"{stem}.onnx", "--strict"]
    assert run_tool("extract_features", argv) == 2
    assert "broken.jpg" in capsys.readouterr().err
    assert not (tmp_path / "f.npy").exists()


def test_list_file_keeps_its_order_and_skips_missing_files(images, exported, tmp_path):
    _, stem = exported
    listing = tmp_path / "list.txt"
    listing.write_text(f"# query images\n{images}/c.png\n\n{images}/missing.jpg\n"
                       f"{images}/a.jpg\n")
    assert run_tool("extract_features", [listing, "--output", tmp_path / "l.npy",
                                         "--exported", f"{stem}.pt"]) == 0
    index = _index(tmp_path / "l.json")
    assert index["files"] == [f"{images}/c.png", f"{images}/a.jpg"]
    assert index["skipped"][0]["file"] == f"{images}/missing.jpg"
    assert np.load(tmp_path / "l.npy").shape == (2, 32)


@pytest.mark.parametrize("args,message", [
    (["--model-dir", "{model}"], "choose one with --width"),
    (["--model-dir", "{model}", "--width", "0.6"], "is not one of the widths"),
    (["--exported", "{model}/export/w025.pt", "--width", "0.25"], "drop --model-dir"),
    (["--exported", "{model}/model_final.pth"], "needs the JSON"),
])
def test_user_errors_exit_2(images, exported, tmp_path, capsys, args, message):
    model_dir, _ = exported
    argv = [images, "--output", tmp_path / "f"] + [a.format(model=model_dir) for a in args]
    assert run_tool("extract_features", argv) == 2
    assert message in capsys.readouterr().err


def test_an_empty_folder_is_a_user_error(tmp_path, exported, capsys):
    (tmp_path / "empty").mkdir()
    _, stem = exported
    assert run_tool("extract_features", [tmp_path / "empty", "--output", tmp_path / "f",
                                         "--exported", f"{stem}.onnx"]) == 2
    assert "no images found" in capsys.readouterr().err


@pytest.mark.parametrize("ext,message", [("onnx", "is not an ONNX model"),
                                         ("pt", "is not a TorchScript model")])
def test_a_file_that_is_not_an_exported_model_is_a_user_error(images, exported, tmp_path,
                                                              capsys, ext, message):
    _, stem = exported
    (tmp_path / f"bad.{ext}").write_bytes(b"not a model")
    (tmp_path / "bad.json").write_text(open(f"{stem}.json").read())
    assert run_tool("extract_features", [images, "--output", tmp_path / "f",
                                         "--exported", tmp_path / f"bad.{ext}"]) == 2
    assert message in capsys.readouterr().err
