"""A FastReID bag-of-tricks config tree becomes a switchable one with a four-key overlay, and the
FastReID keys a switchable model cannot honour are refused by name instead of dropped."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dataset_fixtures import build_market1501

import sfsc
from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.config_checks import ConfigError, merge_config
from sfsc.engine.defaults import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# FastReID's configs/Base-bagtricks.yml and configs/Market1501/bagtricks_R50.yml (their keys and
# values), then the overlay the README shows.
BASE_BAGTRICKS = """\
MODEL:
  META_ARCHITECTURE: Baseline
  BACKBONE:
    NAME: build_resnet_backbone
    NORM: BN
    DEPTH: 50x
    LAST_STRIDE: 1
    FEAT_DIM: 2048
    WITH_IBN: False
    PRETRAIN: True
  HEADS:
    NAME: EmbeddingHead
    NORM: BN
    WITH_BNNECK: True
    POOL_LAYER: GlobalAvgPool
    NECK_FEAT: before
    CLS_LAYER: Linear
  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss",)
    CE:
      EPSILON: 0.1
      SCALE: 1.
    TRI:
      MARGIN: 0.3
      HARD_MINING: True
      NORM_FEAT: False
      SCALE: 1.
INPUT:
  SIZE_TRAIN: [ 256, 128 ]
  SIZE_TEST: [ 256, 128 ]
  REA:
    ENABLED: True
    PROB: 0.5
  FLIP:
    ENABLED: True
  PADDING:
    ENABLED: True
DATALOADER:
  SAMPLER_TRAIN: NaiveIdentitySampler
  NUM_INSTANCE: 4
  NUM_WORKERS: 8
SOLVER:
  AMP:
    ENABLED: True
  OPT: Adam
  MAX_EPOCH: 120
  BASE_LR: 0.00035
  WEIGHT_DECAY: 0.0005
  IMS_PER_BATCH: 64
  SCHED: MultiStepLR
  STEPS: [ 40, 90 ]
  GAMMA: 0.1
  WARMUP_FACTOR: 0.1
  WARMUP_ITERS: 2000
  CHECKPOINT_PERIOD: 30
TEST:
  EVAL_PERIOD: 30
  IMS_PER_BATCH: 128
CUDNN_BENCHMARK: True
"""
BAGTRICKS_R50 = """\
_BASE_: "../Base-bagtricks.yml"
DATASETS:
  NAMES: ("Market1501",)
  TESTS: ("Market1501",)
OUTPUT_DIR: "logs/market1501/bagtricks_R50"
"""
OVERLAY = """\
_BASE_: bagtricks_R50.yml
MODEL:
  META_ARCHITECTURE: SwitchableBaseline
  BACKBONE:
    NAME: build_switchable_resnet_backbone
  HEADS:
    NAME: SwitchableEmbeddingHead
SFSC:
  WIDTHS: [0.25, 0.5, 0.75]
OUTPUT_DIR: logs/market1501/sfsc_bagtricks_R50
"""
# Tiny sizes for a CPU test (what a user would pass as KEY VALUE): no ImageNet download, a
# ResNet-18 on 32x16 images, one step of 8 identities x 8 images, then the evaluation.
TINY = ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.BACKBONE.DEPTH", "18x",
        "MODEL.BACKBONE.FEAT_DIM", "512", "INPUT.SIZE_TRAIN", "[32,16]",
        "INPUT.SIZE_TEST", "[32,16]", "INPUT.PADDING.SIZE", "2", "INPUT.REA.ENABLED", "False",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.NUM_INSTANCE", "8",
        "SOLVER.IMS_PER_BATCH", "64", "SOLVER.MAX_EPOCH", "1", "SOLVER.AMP.ENABLED", "False",
        "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1",
        "TEST.IMS_PER_BATCH", "32", "MODEL.DEVICE", "cpu", "SEED", "0", "SFSC.LOG_PERIOD", "1"]


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> str:
    """configs/Base-bagtricks.yml, configs/Market1501/{bagtricks_R50,sfsc_bagtricks_R50}.yml."""
    root = tmp_path_factory.mktemp("fastreid_configs")
    (root / "Market1501").mkdir()
    (root / "Base-bagtricks.yml").write_text(BASE_BAGTRICKS)
    (root / "Market1501" / "bagtricks_R50.yml").write_text(BAGTRICKS_R50)
    path = root / "Market1501" / "sfsc_bagtricks_R50.yml"
    path.write_text(OVERLAY)
    return str(path)


def _cfg(overlay: str, *opts: str):
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    merge_config(cfg, overlay, list(TINY) + list(opts))
    return cfg


def test_the_overlay_keeps_the_bag_of_tricks(overlay):
    cfg = _cfg(overlay)
    check_config(cfg)
    assert cfg.MODEL.META_ARCHITECTURE == "SwitchableBaseline"
    assert tuple(cfg.MODEL.LOSSES.NAME) == ("CrossEntropyLoss", "TripletLoss")
    assert cfg.MODEL.HEADS.WITH_BNNECK and cfg.MODEL.HEADS.NECK_FEAT == "before"
    assert cfg.DATASETS.NAMES == ("Market1501",) and cfg.SOLVER.OPT == "Adam"
    model = build_model(cfg)
    assert model.widths == (0.25, 0.5, 0.75, 1.0)
    assert type(model.backbone).__name__ == "SwitchableResNet"


def test_the_overlay_trains_one_step_and_evaluates(overlay, tmp_path):
    data_root = str(tmp_path / "datasets")
    build_market1501(data_root)
    out = tmp_path / "run"
    env = dict(os.environ, FASTREID_DATASETS=data_root, OMP_NUM_THREADS="1",
               PYTHONPATH=os.path.join(ROOT, "projects", "SFSC"))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", overlay,
         *TINY, "OUTPUT_DIR", str(out)],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    # the bag of tricks' two losses train the full model, the compatible loss the sub-models
    assert "loss_cls" in log and "loss_triplet" in log and "loss_evidential@0.25" in log
    assert "epoch/iter: 0/0 " in log and "epoch/iter: 0/1 " not in log  # one step
    with open(out / "compatibility.json") as f:
        result = json.load(f)
    assert result["widths"] == [0.25, 0.5, 0.75, 1.0]
    mAP = np.asarray(result["mAP"], dtype=float)
    assert mAP.shape == (4, 4) and np.isfinite(mAP).all() and (mAP > 0).all()


@pytest.mark.parametrize("flag", ["WITH_IBN", "WITH_SE", "WITH_NL"])
def test_backbone_flags_the_switchable_resnet_lacks_are_refused(overlay, flag):
    cfg = _cfg(overlay, f"MODEL.BACKBONE.{flag}", "True")
    with pytest.raises(ConfigError, match=rf"MODEL.BACKBONE.{flag} is True, but "
                                          r"build_switchable_resnet_backbone does not support "
                                          r"it: .* Set MODEL.BACKBONE.\w+ False"):
        check_config(cfg)


@pytest.mark.parametrize("opts, message", [
    (("MODEL.META_ARCHITECTURE", "Baseline"), "MODEL.META_ARCHITECTURE is 'Baseline' while"),
    (("MODEL.HEADS.NAME", "EmbeddingHead"), "MODEL.HEADS.NAME is 'EmbeddingHead' while"),
    (("MODEL.BACKBONE.NAME", "build_resnet_backbone"), "MODEL.BACKBONE.NAME is "
                                                        "'build_resnet_backbone' while"),
    (("MODEL.BACKBONE.NORM", "GhostBN"), "MODEL.BACKBONE.NORM is 'GhostBN'"),
    (("MODEL.HEADS.NORM", "FrozenBN"), "MODEL.HEADS.NORM is 'FrozenBN'"),
    (("MODEL.HEADS.POOL_LAYER", "Identity"), "POOL_LAYER 'Identity' cannot be used"),
    (("MODEL.HEADS.POOL_LAYER", "Flatten"), "POOL_LAYER 'Flatten' cannot be used"),
    (("MODEL.HEADS.POOL_LAYER", "GemPool"), "POOL_LAYER 'GemPool' cannot be used"),
    (("MODEL.HEADS.CLS_LAYER", "AMSoftmax"), "CLS_LAYER 'AMSoftmax' is not one of"),
    (("MODEL.HEADS.NECK_FEAT", "middle"), "NECK_FEAT 'middle' is not"),
    (("MODEL.LOSSES.NAME", '("CrossEntropyLoss","FocalLoss")'),
     r"names \['FocalLoss'\], which FastReID's Baseline skips"),
    (("MODEL.LOSSES.NAME", "()"), "is empty"),
    (("TEST.METRIC", "jaccard"), "TEST.METRIC 'jaccard'"),
    (("TEST.RERANK.ENABLED", "True"), "TEST.RERANK.ENABLED is True.*re-ranking"),
    (("TEST.AQE.ENABLED", "True"), "TEST.AQE.ENABLED is True.*query expansion"),
    (("TEST.PRECISE_BN.ENABLED", "True"), "TEST.PRECISE_BN.ENABLED is True"),
])
def test_fastreid_keys_a_switchable_model_would_ignore_are_refused(overlay, opts, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_cfg(overlay, *opts))


def test_plain_fastreid_configs_are_left_alone(overlay):
    cfg = get_cfg()  # FastReID's defaults name none of SFSC's components
    sfsc.add_sfsc_config(cfg)
    cfg.MODEL.BACKBONE.WITH_IBN = True
    check_config(cfg)


@pytest.mark.parametrize("opts, losses", [
    (("MODEL.HEADS.POOL_LAYER", "GeneralizedMeanPoolingP"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.POOL_LAYER", "GlobalMaxPool"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.POOL_LAYER", "AdaptiveAvgMaxPool"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.POOL_LAYER", "FastGlobalAvgPool"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.POOL_LAYER", "ClipGlobalAvgPool"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.NECK_FEAT", "after"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.CLS_LAYER", "CircleSoftmax", "MODEL.HEADS.SCALE", "64",
      "MODEL.HEADS.MARGIN", "0.35"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.CLS_LAYER", "CosSoftmax", "MODEL.HEADS.SCALE", "30",
      "MODEL.HEADS.MARGIN", "0.25"), ("loss_cls", "loss_triplet")),
    (("MODEL.HEADS.CLS_LAYER", "ArcSoftmax", "MODEL.HEADS.SCALE", "30",
      "MODEL.HEADS.MARGIN", "0.3"), ("loss_cls", "loss_triplet")),
    (("MODEL.LOSSES.NAME", '("CrossEntropyLoss","CircleLoss","Cosface")'),
     ("loss_cls", "loss_circle", "loss_cosface")),
])
def test_other_bag_of_tricks_choices_train_every_width(overlay, opts, losses):
    cfg = _cfg(overlay, "MODEL.HEADS.NUM_CLASSES", "4", *opts)
    check_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images = torch.rand(8, 3, 32, 16) * 255
    targets = torch.arange(4).repeat_interleave(2)
    with EventStorage():  # FastReID's cross-entropy logs its accuracy there
        tasks = model({"images": images, "targets": targets})
    assert tuple(tasks["ori"]) == losses
    assert list(tasks)[1:] == ["compat@0.25", "compat@0.5", "compat@0.75"]
    total = sum(v for task in tasks.values() for v in task.values())
    assert torch.isfinite(total)
    total.backward()
    # every width's compatible loss reaches the shared weights of its slice
    stem = model.backbone.conv1.weight.grad
    assert stem is not None and stem[:16].abs().sum() > 0
