"""The per-backbone SFSC configs (paper Table 5) train on the CPU with tiny inputs."""
from __future__ import annotations

import os

import pytest
import torch
import yaml
from deploy_models import ROOT, tiny_cfg

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.modeling.switchable import width_context

NETS = {  # config name -> (backbone build function, channels of the backbone at 1.0x)
    "R50": ("build_switchable_resnet_backbone", 2048),
    "MobileNetV2": ("build_switchable_mobilenetv2_backbone", 1280),
    "ShuffleNet": ("build_switchable_shufflenet_backbone", 1920),
    "ShuffleNetV2": ("build_switchable_shufflenetv2_backbone", 1024),
}


def _config(dataset: str, net: str) -> str:
    return os.path.join(ROOT, "configs", dataset, f"sfsc_{net}.yml")


@pytest.mark.parametrize("net", sorted(NETS))
def test_backbone_config_trains_and_every_width_gives_the_common_feature(net):
    cfg = tiny_cfg(_config("Market1501", net), size=(64, 32), dim=512)  # the config's 512
    name, channels = NETS[net]
    assert cfg.MODEL.BACKBONE.NAME == name and cfg.MODEL.BACKBONE.FEAT_DIM == channels
    assert cfg.OUTPUT_DIR == f"logs/market1501/sfsc_{net}"
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.backbone.out_channels[-1] == channels
    model.train()
    batches = [{"images": torch.rand(8, 3, 64, 32) * 255, "targets": torch.arange(8) % 4}
               for _ in range(2)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    trainer = TaskGradientTrainer(model, batches, optimizer, None, build_aggregation(cfg))
    with EventStorage(0):
        for step in range(2):
            trainer.iter = step
            trainer.run_step()
            assert torch.isfinite(trainer.task_grads.losses).all()
    assert trainer.skipped_total == 0
    assert trainer.task_names == ["ori", "compat@0.25", "compat@0.5", "compat@0.75"]
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "heads.weight" in changed and any(n.startswith("backbone.") for n in changed)
    model.eval()
    with torch.no_grad():
        for width in (0.25, 0.5, 0.75, 1.0):
            with width_context(model, width):
                feats = model(batches[0])
            assert feats.shape == (8, 512) and torch.isfinite(feats).all()


@pytest.mark.parametrize("net", sorted(NETS))
def test_synthetic_config_mirrors_the_market1501_one(net):
    with open(_config("Synthetic", net)) as f:
        synthetic = yaml.safe_load(f)
    with open(_config("Market1501", net)) as f:
        market = yaml.safe_load(f)
    assert synthetic.pop("_BASE_") == "Base-Synthetic.yml"
    assert market.pop("_BASE_") == "Base-Market1501.yml"
    assert synthetic.pop("OUTPUT_DIR") == f"logs/synthetic/sfsc_{net}"
    market.pop("OUTPUT_DIR")
    market["MODEL"]["BACKBONE"].pop("PRETRAIN", None)  # the synthetic testbed starts from scratch
    assert synthetic == market
