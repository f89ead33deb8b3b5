"""The per-platform path from commands alone, on a tiny Market-1501: a phone's exported 0.25x
sub-model and a server's separately trained full model each extract the test set's features
(tools/extract_features.py --dataset), tools/eval_compat.py scores the folder, and the same
files feed tools/build_index.py, tools/search_index.py and tools/visualize_ranks.py.

References: FastReID's own Market1501 class for the ids, the in-process evaluation of the two
checkpoints on FastReID's test loader for the matrix, numpy's exact cosine ranking for the
index's lists."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from dataset_fixtures import build_market1501
from deploy_models import run_tool, tiny_cfg
from PIL import Image
from torch import nn

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.modeling.meta_arch import build_model
from sfsc.data.loaders import build_test_loader
from sfsc.deploy import export_submodel, load_switchable
from sfsc.evaluation.model_set import ModelEntry, evaluate_model_set, load_trained_config
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.modeling.switchable import switchable_widths, width_context

pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # FastReID's ToTensor


def _model_folder(cfg, folder, images, seed: int) -> None:
    """A training output folder whose model has random weights and every BatchNorm's statistics
    measured on ``images`` (N, 3, H, W) 0-255, as training leaves them: its features spread
    like a trained model's, so that no two gallery scores of a query are within rounding."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in batch_norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    model.train()
    with torch.no_grad():
        x = (images - model.pixel_mean) / model.pixel_std
        for width in switchable_widths(model):
            with width_context(model, width):
                model.heads.bottleneck(model.heads.pool_layer(model.backbone(x)))
    model.eval()
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    SFSCCheckpointer(model, folder).save("model_final")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory):
    """Dataset root, the two model folders and the feature folder both platforms wrote."""
    root = str(tmp_path_factory.mktemp("datasets"))
    build_market1501(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fastreid.data.build._root", root)
        base = tmp_path_factory.mktemp("platforms")
        phone_dir, server_dir = base / "switchable", base / "server"
        phone_cfg, server_cfg = tiny_cfg(), tiny_cfg()
        server_cfg.TEST.FLIP.ENABLED = True  # the files must follow the evaluation's flip
        dataset = DATASET_REGISTRY.get("Market1501")(root=root)
        transform = build_transforms(phone_cfg, is_train=False)
        images = torch.stack([transform(Image.open(path).convert("RGB"))
                              for path, _, _ in dataset.train + dataset.query + dataset.gallery])
        _model_folder(phone_cfg, str(phone_dir), images, seed=0)
        _model_folder(server_cfg, str(server_dir), images, seed=1)
        export_submodel(load_switchable(str(phone_dir)), 0.25, str(base / "export"), name="w025")
        features = base / "features"
        assert run_tool("extract_features", [
            "--dataset", "Market1501", "--exported", base / "export" / "w025.onnx",
            "--output-dir", features, "--name", "phone", "--batch-size", "4"]) == 0
        assert run_tool("extract_features", [
            "--dataset", "Market1501", "--model-dir", server_dir, "--width", "1.0",
            "--output-dir", features, "--name", "server"]) == 0
        yield {"root": root, "phone": phone_dir, "server": server_dir, "features": features,
               "base": base}


def _matrix(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _in_process(platforms, entries) -> dict:
    cfg = load_trained_config(str(platforms["phone"]))
    loader, num_query = build_test_loader(cfg, "Market1501")
    return evaluate_model_set(entries, loader, num_query).to_json()


def _assert_same_matrix(ours: dict, reference: dict) -> None:
    assert ours["labels"] == reference["labels"]
    for metric in ("mAP", "R1", "R5", "R10", "mINP"):
        np.testing.assert_allclose(ours[metric], reference[metric], atol=1e-3, err_msg=metric)


def test_files_hold_the_datasets_query_and_gallery(platforms):
    dataset = DATASET_REGISTRY.get("Market1501")(root=platforms["root"])
    for name in ("phone", "server"):
        for split, items in (("query", dataset.query), ("gallery", dataset.gallery)):
            with np.load(platforms["features"] / f"{name}_{split}.npz") as data:
                assert data["pids"].tolist() == [pid for _, pid, _ in items]
                assert data["camids"].tolist() == [cam for _, _, cam in items]
                assert data["paths"].tolist() == [path for path, _, _ in items]
                assert data["feats"].shape == (len(items), 32)
                np.testing.assert_allclose(np.linalg.norm(data["feats"], axis=1), 1, atol=1e-5)
                assert str(data["metric"]) == "cosine"
        info = json.loads((platforms["features"] / f"{name}.json").read_text())
        assert info["dataset"] == "Market1501"
    assert json.loads((platforms["features"] / "server.json").read_text())["model"]["flip"]


def test_the_folders_matrix_is_the_in_process_evaluation(platforms):
    assert run_tool("eval_compat", [platforms["features"]]) == 0
    reference = _in_process(platforms, [ModelEntry("phone", str(platforms["phone"]), 0.25),
                                        ModelEntry("server", str(platforms["server"]), 1.0)])
    _assert_same_matrix(_matrix(platforms["features"] / "compatibility.json"), reference)


def test_model_set_command_scores_separately_trained_models(platforms):
    out = platforms["base"] / "model_set"
    # the server's width is left out: the one its model was trained at (1.0)
    assert run_tool("eval_compat", ["--model", f"phone={platforms['phone']}@0.25",
                                    "--model", f"server={platforms['server']}",
                                    "--dataset", "Market1501", "--output-dir", out]) == 0
    reference = _in_process(platforms, [ModelEntry("phone", str(platforms["phone"]), 0.25),
                                        ModelEntry("server", str(platforms["server"]), 1.0)])
    _assert_same_matrix(_matrix(out / "compatibility.json"), reference)
    assert run_tool("eval_compat", ["--model", f"x={platforms['phone']}@0.3",
                                    "--output-dir", out]) == 2


def test_index_search_and_picture_read_the_same_files(platforms):
    features, base = platforms["features"], platforms["base"]
    assert run_tool("build_index", ["--gallery", features / "server_gallery.npz",
                                    "--index-factory", "Flat", "--output", base / "index"]) == 0
    assert run_tool("search_index", ["--index", base / "index", "--query",
                                     features / "phone_query.npz", "--k", "5",
                                     "--output", base / "result.npz"]) == 0
    with np.load(features / "phone_query.npz") as q, np.load(features / "server_gallery.npz") as g:
        scores = q["feats"] @ g["feats"].T
        junk = (q["pids"][:, None] == g["pids"][None]) & (q["camids"][:, None] == g["camids"][None])
        expected = np.argsort(-np.where(junk, -np.inf, scores), axis=1, kind="stable")[:, :5]
    with np.load(base / "result.npz") as result:
        assert result["indices"].tolist() == expected.tolist()
    picture = base / "ranks.png"
    assert run_tool("visualize_ranks", ["--query-features", features / "phone_query.npz",
                                        "--gallery-features", features / "server_gallery.npz",
                                        "--order", "worst", "--topk", "5",
                                        "--output", picture]) == 0
    with Image.open(picture) as image:
        assert image.width > 5 * 16 and image.height > 16


def test_a_search_warns_unless_the_queries_come_from_the_indexs_checkpoint(platforms, caplog):
    features, base = platforms["features"], platforms["base"]
    # the phone's switchable checkpoint at full width fills an index of its own
    assert run_tool("extract_features", [
        "--dataset", "Market1501", "--model-dir", platforms["phone"], "--width", "1.0",
        "--output-dir", features, "--name", "phone_full"]) == 0
    assert run_tool("build_index", ["--gallery", features / "phone_full_gallery.npz",
                                    "--index-factory", "Flat", "--output", base / "own"]) == 0
    server_index = base / "server_index"
    assert run_tool("build_index", ["--gallery", features / "server_gallery.npz",
                                    "--index-factory", "Flat", "--output", server_index]) == 0
    plain = base / "plain_query.npz"  # the same features without the JSON that names the model
    with np.load(features / "phone_query.npz") as q:
        np.savez(plain, **{k: q[k] for k in q.files})

    def warnings(index, query):
        caplog.clear()
        assert run_tool("search_index", ["--index", index, "--query", query, "--k", "3",
                                         "--output", base / "found.npz"]) == 0
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    # the exported 0.25x sub-model of the same checkpoint: one network, no warning
    assert warnings(base / "own", features / "phone_query.npz") == []
    (other,) = warnings(server_index, features / "phone_query.npz")
    with open(base / "export" / "w025.json") as f:
        phone_id = json.load(f)["source"]["checkpoint_sha256"]
    assert f"come from checkpoint {phone_id}" in other and "not sub-models of one" in other
    (unknown,) = warnings(base / "own", plain)
    assert "cannot tell which network made the queries of" in unknown


def test_the_index_takes_the_metric_the_gallery_file_declares(platforms):
    features, base = platforms["features"], platforms["base"]
    with np.load(features / "server_gallery.npz") as g:
        arrays = {k: g[k] for k in g.files}
    arrays["metric"] = np.asarray("euclidean")
    euclidean = base / "euclidean_gallery.npz"
    np.savez(euclidean, **arrays)
    assert run_tool("build_index", ["--gallery", euclidean, "--index-factory", "Flat",
                                    "--output", base / "euclidean_index"]) == 0
    with open(base / "euclidean_index" / "index.json") as f:
        assert json.load(f)["metric"] == "euclidean"
    assert run_tool("build_index", ["--gallery", euclidean, "--index-factory", "Flat",
                                    "--metric", "cosine", "--output", base / "refused"]) == 2
    assert not (base / "refused").exists()
