"""A dense FastReID checkpoint, trained and saved by FastReID's own DefaultTrainer, starts every
width of a switchable model and serves as the frozen old model of one-to-one BCT."""
from __future__ import annotations

import copy
import os

import pytest
import torch
from dataset_fixtures import build_market1501, train_tiny
from torch import nn

import sfsc
from fastreid.config import get_cfg
from fastreid.engine import DefaultTrainer
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.checkpoint import Checkpointer
from sfsc.config_checks import ConfigError
from sfsc.data.loaders import build_test_loader
from sfsc.engine import SFSCTrainer
from sfsc.evaluation.model_set import ModelEntry, evaluate_model_set, load_trained_model
from sfsc.fastreid.checkpoint import CheckpointError
from sfsc.modeling.fastreid_checkpoint import (
    DenseCheckpointError,
    init_from_dense,
    read_dense_state,
)
from sfsc.modeling.meta_arch.old_model import load_old_model
from sfsc.modeling.switchable import width_context

# A bag-of-tricks Baseline (BNNeck, no embedding conv, CE + triplet), ResNet-18, 32x16 inputs.
DENSE = ["MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
         "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.WITH_BNNECK", "True",
         "MODEL.LOSSES.NAME", '("CrossEntropyLoss","TripletLoss")',
         "DATASETS.NAMES", '("Market1501",)', "DATASETS.TESTS", '("Market1501",)',
         "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]",
         "DATALOADER.NUM_WORKERS", "0", "DATALOADER.NUM_INSTANCE", "8",
         "SOLVER.IMS_PER_BATCH", "64", "SOLVER.MAX_EPOCH", "1", "SOLVER.OPT", "Adam",
         "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1",
         "TEST.IMS_PER_BATCH", "32", "MODEL.DEVICE", "cpu"]
SWITCHABLE = ["MODEL.META_ARCHITECTURE", "SwitchableBaseline",
              "MODEL.BACKBONE.NAME", "build_switchable_resnet_backbone",
              "MODEL.HEADS.NAME", "SwitchableEmbeddingHead", "SFSC.WIDTHS", "[0.25,0.5,0.75]"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """(output folder, dataset root, FastReID's own test results) of one epoch (one step) of
    FastReID's DefaultTrainer."""
    root = str(tmp_path_factory.mktemp("datasets"))
    build_market1501(root)
    out = str(tmp_path_factory.mktemp("dense"))
    cfg = get_cfg()
    cfg.merge_from_list(DENSE + ["OUTPUT_DIR", out])
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("fastreid.data.build._root", root)
        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=False)
        results = trainer.train()
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    return out, root, results


def _switchable_cfg(dense_dir: str, *opts: str):
    """The dense run's own config.yaml plus the switchable names, as a user would write it."""
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(dense_dir, "config.yaml"))
    cfg.merge_from_list(SWITCHABLE + list(opts))
    return cfg


def _dense_model(dense_dir: str):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(dense_dir, "config.yaml"))
    model = build_model(cfg)
    Checkpointer(model).load(os.path.join(dense_dir, "model_final.pth"))
    return model.eval()


def test_checkpoint_is_fastreids_own(dense):
    data = torch.load(os.path.join(dense[0], "model_final.pth"), weights_only=True)
    assert {"model", "optimizer", "epoch"} <= set(data)
    assert "heads.bottleneck.0.running_var" in data["model"]  # the BNNeck, no embedding conv
    assert "heads.bottleneck.1.weight" not in data["model"]


def test_every_width_starts_from_the_dense_weights(dense):
    path = os.path.join(dense[0], "model_final.pth")
    state = read_dense_state(path)
    model = build_model(_switchable_cfg(dense[0])).eval()
    report = init_from_dense(model, state, path)
    assert report.embedding == "identity" and not report.skipped
    conv = "backbone.layer3.1.conv2.weight"
    assert torch.equal(model.state_dict()[conv], state[conv])
    own = model.state_dict()
    for width, channels in ((0.25, 32), (0.5, 64), (1.0, 128)):
        key = "backbone.layer2.0.bn1.bn." + f"{width:g}".replace(".", "_") + \
            ("_0" if width == 1.0 else "")
        assert torch.equal(own[f"{key}.running_mean"],
                           state["backbone.layer2.0.bn1.running_mean"][:channels])
        assert torch.equal(own[f"{key}.weight"], state["backbone.layer2.0.bn1.weight"][:channels])
    for bn in model.heads.bottleneck[1].bn.values():  # the BNNeck, whole, in every width
        assert torch.equal(bn.running_var, state["heads.bottleneck.0.running_var"])
    assert torch.equal(model.heads.weight, state["heads.weight"])

    # With FastReID's stem pooling swapped for torchvision's (the one architectural difference),
    # the dense network and the switchable one at 1.0x compute the same features.
    reference = _dense_model(dense[0])
    reference.backbone.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    images = torch.rand(4, 3, 32, 16) * 255
    with torch.no_grad(), width_context(model, 1.0):
        ours = model({"images": images.clone()})
        theirs = reference({"images": images.clone()})
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_classifier_of_another_identity_count_is_left_and_reported(dense):
    path = os.path.join(dense[0], "model_final.pth")
    model = build_model(_switchable_cfg(dense[0], "MODEL.HEADS.NUM_CLASSES", "5"))
    before = model.heads.weight.clone()
    report = init_from_dense(model, read_dense_state(path), path)
    assert "another identity count" in report.skipped["heads.weight"]
    assert torch.equal(model.heads.weight, before)


def test_checkpoints_that_do_not_fit_are_named_errors(dense, tmp_path):
    path = os.path.join(dense[0], "model_final.pth")
    state = read_dense_state(path)
    deeper = build_model(_switchable_cfg(dense[0], "MODEL.BACKBONE.DEPTH", "34x"))
    with pytest.raises(DenseCheckpointError, match=r"lacks backbone.layer1.2.conv1.weight"):
        init_from_dense(deeper, state, path)
    narrower = build_model(_switchable_cfg(dense[0], "MODEL.HEADS.EMBEDDING_DIM", "256"))
    with pytest.raises(DenseCheckpointError, match=r"has no embedding conv .* maps 512 "
                                                   r"backbone channels to 256"):
        init_from_dense(narrower, state, path)
    se = get_cfg()  # FastReID's own ResNet with squeeze-and-excitation blocks
    se.merge_from_list(DENSE + ["MODEL.BACKBONE.WITH_SE", "True", "MODEL.HEADS.NUM_CLASSES", "8"])
    with pytest.raises(DenseCheckpointError, match="squeeze-and-excitation"):
        init_from_dense(build_model(_switchable_cfg(dense[0])), build_model(se).state_dict())
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DenseCheckpointError, match="cannot read"):
        read_dense_state(str(tmp_path / "junk.pth"))


def test_dense_model_is_the_frozen_old_model_of_switchable_bct(dense, tmp_path, monkeypatch):
    dense_dir, root, fastreid_results = dense
    weights = os.path.join(dense_dir, "model_final.pth")
    monkeypatch.setattr("fastreid.data.build._root", root)
    captured = {}
    original = SFSCTrainer.resume_or_load

    def resume_or_load(self, resume=True):
        original(self, resume)
        captured["start"] = copy.deepcopy(self.checkpointer.model.state_dict())
        captured["old"] = self.checkpointer.model.old_model

    monkeypatch.setattr(SFSCTrainer, "resume_or_load", resume_or_load)
    out = train_tiny("Market1501/bct_R18.yml", str(tmp_path / "run"),
                     "SFSC.WIDTHS", "[0.25,0.5,0.75]", "SFSC.TRAIN_WIDTH", "1.0",
                     "SFSC.OLD_MODEL.WEIGHTS", weights,
                     "SFSC.OLD_MODEL.CONFIG", os.path.join(dense_dir, "config.yaml"),
                     "SFSC.DENSE_INIT.WEIGHTS", weights, "MODEL.HEADS.EMBEDDING_DIM", "0")
    state = read_dense_state(weights)
    old = captured["old"]
    assert type(old).__name__ == "Baseline" and type(old.backbone).__name__ == "ResNet"
    assert all(torch.equal(v, state[k]) for k, v in old.state_dict().items())
    assert not old.training and not any(p.requires_grad for p in old.parameters())
    start = captured["start"]  # training started from the dense weights
    assert torch.equal(start["backbone.conv1.weight"], state["backbone.conv1.weight"])
    assert torch.equal(start["heads.weight"], state["heads.weight"])
    metrics = open(os.path.join(out, "metrics.json")).read()  # BCT against the dense model
    assert "loss_bct@0.25" in metrics and "loss_bct@0.75" in metrics
    assert os.path.isfile(os.path.join(out, "compatibility.json"))

    # The deployed model's gallery searched with the new sub-models' queries: M(new@w, old).
    cfg, _ = load_trained_model(out)
    loader, num_query = build_test_loader(cfg, "Market1501")
    entries = [ModelEntry("old", dense_dir, 1.0), ModelEntry(0.25, out, 0.25),
               ModelEntry(1.0, out, 1.0)]
    result = evaluate_model_set(entries, loader, num_query)
    assert result.cell("old", "old")["mAP"] == pytest.approx(fastreid_results["mAP"], abs=1e-3)
    assert 0 <= result.cell(0.25, "old")["mAP"] <= 100


def _one_to_one_cfg(dense_dir: str, *opts: str):
    weights = os.path.join(dense_dir, "model_final.pth")
    return _switchable_cfg(dense_dir, "SFSC.COMPAT_LOSS", "bct", "SFSC.OLD_MODEL.WEIGHTS",
                           weights, *opts)


def test_dense_old_model_errors_name_the_key(dense):
    config = os.path.join(dense[0], "config.yaml")
    with pytest.raises(CheckpointError, match="set SFSC.OLD_MODEL.CONFIG to the config.yaml"):
        load_old_model(_one_to_one_cfg(dense[0]))
    with pytest.raises(ConfigError, match=r"512-d features, this model 256-d .*"
                                          r"Set MODEL.HEADS.EMBEDDING_DIM 512"):
        load_old_model(_one_to_one_cfg(dense[0], "SFSC.OLD_MODEL.CONFIG", config,
                                       "MODEL.HEADS.EMBEDDING_DIM", "256"))
    with pytest.raises(ConfigError, match=r"MODEL.PIXEL_STD is \[1.0, 1.0, 1.0\] here"):
        load_old_model(_one_to_one_cfg(dense[0], "SFSC.OLD_MODEL.CONFIG", config,
                                       "MODEL.PIXEL_STD", "[1.0,1.0,1.0]"))
    old = load_old_model(_one_to_one_cfg(dense[0], "SFSC.OLD_MODEL.CONFIG", config))
    assert type(old).__name__ == "Baseline"
