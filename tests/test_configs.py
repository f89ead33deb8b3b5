"""Every shipped YAML merges onto FastReID's defaults + SFSC's keys and builds its model."""
import glob
import os

import pytest
import torch

import sfsc
from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from sfsc.engine.checkpoint import SFSCCheckpointer
from sfsc.modeling.backbones.pretrained import torchvision_weights
from sfsc.modeling.meta_arch.old_model import old_model_config

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "**",
                                        "*.yml"), recursive=True))


def test_there_are_configs_for_every_dataset():
    folders = {os.path.basename(os.path.dirname(c)) for c in CONFIGS}
    assert {"Market1501", "MSMT17", "VeRi", "Synthetic"} <= folders


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, "configs") for c in CONFIGS])
def test_real_datasets_start_from_imagenet_weights_the_synthetic_one_from_scratch(path):
    """As FastReID's bag of tricks; ShuffleNet v1 has no torchvision weights."""
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(path)
    dataset = os.path.basename(os.path.dirname(path))
    bb = cfg.MODEL.BACKBONE
    if dataset in ("Synthetic", "configs") or os.path.basename(path) == "sfsc_ShuffleNet.yml":
        assert not bb.PRETRAIN
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
