"""Every shipped YAML merges onto FastReID's defaults + SFSC's keys and builds its model; the Base
configs hold the bag-of-tricks settings the paper trains with, and the data sets' Bases change
only what their data set needs."""
import glob
import json
import os

import pytest
import torch

import sfsc
from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from sfsc.benchmark.pretraining.dense import PretrainParams
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.modeling.backbones.pretrained import torchvision_weights
from sfsc.modeling.meta_arch.old_model import old_model_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = "benchmarks/testbed/weights/resnet18-2affeffe.pth"
CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "**",
                                        "*.yml"), recursive=True))


def test_there_are_configs_for_every_dataset():
    folders = {os.path.basename(os.path.dirname(c)) for c in CONFIGS}
    assert {"Market1501", "MSMT17", "VeRi", "Synthetic", "SyntheticHard"} <= folders


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, "configs") for c in CONFIGS])
def test_real_datasets_start_from_imagenet_weights_the_synthetic_one_from_scratch(path):
    """As FastReID's bag of tricks; ShuffleNet v1 has no torchvision weights. The testbed
    starts from the shipped file that ``tools/pretrain.py`` wrote with its defaults."""
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(path)
    dataset = os.path.basename(os.path.dirname(path))
    bb = cfg.MODEL.BACKBONE
    if dataset in ("Synthetic", "configs") or os.path.basename(path) == "sfsc_ShuffleNet.yml":
        assert not bb.PRETRAIN
    elif dataset in ("SyntheticHard", "SyntheticHardLong", "HangulReID"):
        assert bb.PRETRAIN and (bb.NAME, bb.DEPTH) == ("build_switchable_resnet_backbone", "18x")
        assert bb.PRETRAIN_PATH == SHIPPED
        # made by today's defaults: `tools/pretrain.py --threads 1` rebuilds its parameters
        with open(os.path.join(ROOT, SHIPPED.replace(".pth", ".manifest.json"))) as f:
            manifest = json.load(f)
        assert manifest["key"] == PretrainParams().key()
        assert manifest["weights"] == os.path.basename(SHIPPED)
    else:
        assert bb.PRETRAIN and not bb.PRETRAIN_PATH
        if not os.path.basename(path).startswith("Base-"):
            assert torchvision_weights(bb.NAME, bb.DEPTH).url.endswith(".pth")


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, "configs") for c in CONFIGS])
def test_config_builds(path, tmp_path):
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(path)
    if os.path.basename(path).startswith("Base-"):
        return
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False  # random weights; the weights' layout is tested apart
    cfg.MODEL.HEADS.NUM_CLASSES = 10
    if cfg.SFSC.OLD_MODEL.WEIGHTS:  # one-to-one: stand in a freshly built old (full) model
        old = build_model(old_model_config(cfg))
        cfg.SFSC.OLD_MODEL.WEIGHTS = str(tmp_path / "old.pth")
        SFSCCheckpointer(old, str(tmp_path)).save("old")
    model = build_model(cfg)
    model.eval()
    with torch.no_grad():
        feats = model({"images": torch.rand(2, 3, 64, 32) * 255})
    assert feats.shape == (2, model.heads.feat_dim)


BASES = [c for c in CONFIGS if os.path.basename(c).startswith("Base-")]
BASE_IDS = [os.path.relpath(c, os.path.join(os.path.dirname(__file__), "..", "configs"))
            for c in BASES]
# What each data set's Base may change of Base-SFSC.yml (the bag of tricks): the data set, for
# the real data sets ImageNet initialisation (Base-SFSC.yml trains from scratch so that it
# builds offline), and for the CPU-sized synthetic demo its schedule, input size and
# augmentation.
ALLOWED_CHANGES = {
    "Base-SFSC.yml": set(),
    "Base-Market1501.yml": {"DATASETS", "MODEL.BACKBONE.PRETRAIN"},
    "Base-MSMT17.yml": {"DATASETS", "MODEL.BACKBONE.PRETRAIN"},
    "Base-VeRi.yml": {"DATASETS", "MODEL.BACKBONE.PRETRAIN"},
    "Base-Synthetic.yml": {"DATASETS", "INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST", "INPUT.PADDING",
                           "INPUT.REA", "DATALOADER.NUM_WORKERS", "SOLVER", "TEST.EVAL_PERIOD",
                           "TEST.IMS_PER_BATCH", "CUDNN_BENCHMARK", "SEED"},
}
# The testbed: the synthetic set's changes, plus pretrained weights (its own) and their rate.
ALLOWED_CHANGES["Base-SyntheticHard.yml"] = ALLOWED_CHANGES["Base-Synthetic.yml"] | {
    "MODEL.BACKBONE.PRETRAIN", "MODEL.BACKBONE.PRETRAIN_PATH"}
# The testbed trained to convergence: the testbed with a longer schedule.
ALLOWED_CHANGES["Base-SyntheticHardLong.yml"] = ALLOWED_CHANGES["Base-SyntheticHard.yml"]
# HangulReID: the testbed's recipe on its own data and input, unmirrored (a mirrored syllable
# is no image of it).
ALLOWED_CHANGES["Base-HangulReID.yml"] = ALLOWED_CHANGES["Base-SyntheticHard.yml"] | {
    "INPUT.FLIP"}


def _merged(path):
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(path)
    return cfg


def _flat(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_base_config_is_checked():
    assert {os.path.basename(c) for c in BASES} == set(ALLOWED_CHANGES)


@pytest.mark.parametrize("path", BASES, ids=BASE_IDS)
def test_base_config_keeps_the_bag_of_tricks(path):
    from fastreid.data.datasets import DATASET_REGISTRY
    from sfsc.engine.defaults import check_config

    cfg = _merged(path)
    check_config(cfg)
    for name in cfg.DATASETS.NAMES + cfg.DATASETS.TESTS:
        assert DATASET_REGISTRY.get(name) is not None, name
    # Luo et al.'s settings, as the paper trains them.
    assert cfg.MODEL.META_ARCHITECTURE == "SwitchableBaseline"
    assert (cfg.MODEL.BACKBONE.DEPTH, cfg.MODEL.BACKBONE.LAST_STRIDE) == ("18x", 1)
    assert cfg.MODEL.HEADS.WITH_BNNECK and cfg.MODEL.HEADS.NECK_FEAT == "before"
    assert cfg.MODEL.LOSSES.NAME == ("CrossEntropyLoss",) and cfg.MODEL.LOSSES.CE.EPSILON == 0.1
    assert cfg.SOLVER.OPT == "Adam"
    assert cfg.DATALOADER.SAMPLER_TRAIN == "NaiveIdentitySampler"
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE) == (64, 4)  # 16 ids x 4
    assert cfg.INPUT.FLIP.ENABLED != ("INPUT.FLIP" in ALLOWED_CHANGES[os.path.basename(path)])
    assert cfg.INPUT.PADDING.ENABLED
    assert cfg.TEST.METRIC == "cosine"
    assert (list(cfg.SFSC.WIDTHS), cfg.SFSC.COMPAT_LOSS, cfg.SFSC.AGGREGATION) == \
        ([0.25, 0.5, 0.75], "evidential", "pcgrad")
    # Nothing else differs from Base-SFSC.yml than what the data set needs.
    reference = _flat(_merged(os.path.join(os.path.dirname(path), "..", "Base-SFSC.yml")
                              if os.path.basename(path) != "Base-SFSC.yml" else path))
    changed = {k for k, v in _flat(cfg).items() if reference[k] != v}
    allowed = ALLOWED_CHANGES[os.path.basename(path)]
    assert all(any(k == a or k.startswith(a + ".") for a in allowed) for k in changed), changed
    if "SOLVER" not in allowed:  # the real data sets train exactly as the paper
        assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.MAX_EPOCH) == \
            (0.00035, 0.0005, 120)
        assert list(cfg.INPUT.SIZE_TRAIN) == [256, 128]
        assert cfg.INPUT.REA.ENABLED and cfg.INPUT.REA.PROB == 0.5


def test_base_config_builds_the_bag_of_tricks_model():
    from fastreid.solver import build_optimizer

    cfg = _merged(os.path.join(os.path.dirname(__file__), "..", "configs", "Base-SFSC.yml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HEADS.NUM_CLASSES = 10
    model = build_model(cfg)
    # BNNeck: a BatchNorm per width after pooling, its bias frozen.
    neck = {n: p.requires_grad for n, p in model.heads.named_parameters() if ".bn." in n}
    assert neck and all(neck[n] is (not n.endswith(".bias")) for n in neck)
    model.eval()
    with torch.no_grad():
        assert model.backbone(torch.rand(1, 3, 64, 32)).shape[-2:] == (4, 2)  # last stride 1
    optimizer, _ = build_optimizer(cfg, model, contiguous=False)
    assert isinstance(optimizer, torch.optim.Adam)
    assert {g["lr"] for g in optimizer.param_groups} == {0.00035}
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0005}
