"""Small trained-looking SFSC output folders and in-process runs of the deployment tools."""
from __future__ import annotations

import os
import runpy
import sys

import torch
from torch import nn

from fastreid.modeling.meta_arch import build_model
from sfsc.fastreid.checkpoint import SFSCCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                if m.bias.requires_grad:  # the BNNeck's beta stays frozen at zero
                    m.bias.copy_(torch.randn(n, generator=generator) * 0.2)


def make_output_dir(cfg, folder: str, seed: int = 0) -> nn.Module:
    """Build ``cfg``'s model with random weights and BN statistics, save it as a training
    output folder would hold it, return the model (eval mode)."""
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(seed)
    model = build_model(cfg)
    randomise_bn(model, seed)
    model.eval()
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    SFSCCheckpointer(model, folder).save("model_final")
    return model


def tiny_cfg(config_file: str = "", **sizes):
    """A mutable config (default: configs/Base-SFSC.yml) shrunk for CPU tests, as sfsc_cfg is."""
    import sfsc
    from fastreid.config import get_cfg

    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(config_file or os.path.join(ROOT, "configs", "Base-SFSC.yml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False  # random weights (real datasets' configs use ImageNet's)
    cfg.MODEL.HEADS.NUM_CLASSES = 8
    cfg.MODEL.HEADS.EMBEDDING_DIM = sizes.get("dim", 32)
    cfg.INPUT.SIZE_TRAIN = list(sizes.get("size", (32, 16)))
    cfg.INPUT.SIZE_TEST = list(sizes.get("size", (32, 16)))
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.AMP.ENABLED = False
    return cfg


def run_tool(name: str, argv) -> int:
    """Exit status of ``python tools/<name>.py argv`` (2: user error), run as that command runs
    it (its ``__main__``), in this process so that the imports are paid once."""
    script = os.path.join(ROOT, "tools", f"{name}.py")
    saved, sys.argv = sys.argv, [script, *(str(a) for a in argv)]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_info:
        return 0 if exit_info.code is None else exit_info.code
    finally:
        sys.argv = saved
    return 0
