"""Switchable ResNet-18/34/50/101 (torchvision layout) registered in FastReID's BACKBONE_REGISTRY.

At width 1.0 the network is exactly torchvision's ResNet (same layers, same parameter count);
at crop ratio γ every stage keeps its leading round(γ·C) channels and each width has its own
BatchNorm. The RGB input is never sliced. The backbone returns the last feature map, whose
channel count per width is ``out_channels``; the head maps it to a common feature dimension.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

from ...config import model_widths
from ..switchable import SwitchableBatchNorm2d, SwitchableConv2d
from .channels import plan_widths, scaled
from .pretrained import load_pretrained

__all__ = ["SwitchableResNet", "build_switchable_resnet_backbone"]


class SwitchableBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, widths, in_ch: List[int], mid: List[int], out: List[int], stride: int,
                 norm: str):
        super().__init__()
        self.conv1 = SwitchableConv2d(widths, in_ch, mid, 3, stride, 1)
        self.bn1 = SwitchableBatchNorm2d(widths, mid, norm)
        self.conv2 = SwitchableConv2d(widths, mid, out, 3, 1, 1)
        self.bn2 = SwitchableBatchNorm2d(widths, out, norm)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(widths, in_ch, out, stride, norm)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SwitchableBottleneck(nn.Module):
    expansion = 4

    def __init__(self, widths, in_ch: List[int], mid: List[int], out: List[int], stride: int,
                 norm: str):
        super().__init__()
        self.conv1 = SwitchableConv2d(widths, in_ch, mid, 1)
        self.bn1 = SwitchableBatchNorm2d(widths, mid, norm)
        self.conv2 = SwitchableConv2d(widths, mid, mid, 3, stride, 1)  # stride on 3x3 (v1.5)
        self.bn2 = SwitchableBatchNorm2d(widths, mid, norm)
        self.conv3 = SwitchableConv2d(widths, mid, out, 1)
        self.bn3 = SwitchableBatchNorm2d(widths, out, norm)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(widths, in_ch, out, stride, norm)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(widths, in_ch: List[int], out_ch: List[int], stride: int, norm: str):
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(SwitchableConv2d(widths, in_ch, out_ch, 1, stride),
                         SwitchableBatchNorm2d(widths, out_ch, norm))


_ARCH = {
    "18x": (SwitchableBasicBlock, [2, 2, 2, 2]),
    "34x": (SwitchableBasicBlock, [3, 4, 6, 3]),
    "50x": (SwitchableBottleneck, [3, 4, 6, 3]),
    "101x": (SwitchableBottleneck, [3, 4, 23, 3]),
}
_PLANES = (64, 128, 256, 512)  # the four stages' inner channels at 1.0x (the stem has 64)


def _plan(expansion: int, width: float) -> Dict[str, int]:
    """Channels at ``width`` of the stem and of every stage's inner and output layers."""
    plan = {"stem": scaled("stem conv1", 64, width)}
    for i, planes in enumerate(_PLANES, 1):
        plan[f"layer{i}"] = scaled(f"layer{i} inner convs", planes, width)
        plan[f"layer{i} out"] = scaled(f"layer{i} output convs", planes * expansion, width)
    return plan


class SwitchableResNet(nn.Module):
    """ResNet whose width is switched by :func:`sfsc.modeling.switchable.set_width`.

    Input (N, 3, H, W) normalised images; output (N, out_channels[width], H/16 or H/32, ...).
    """

    def __init__(self, widths: Sequence[float], depth: str = "18x", last_stride: int = 1,
                 norm: str = "BN"):
        super().__init__()
        if depth not in _ARCH:
            raise ValueError(f"MODEL.BACKBONE.DEPTH {depth!r} is not one of {sorted(_ARCH)}")
        block, layers = _ARCH[depth]
        self.widths = tuple(widths)
        plans = plan_widths("switchable ResNet", self.widths, lambda w: _plan(block.expansion, w))
        stem = [p["stem"] for p in plans]
        self.conv1 = SwitchableConv2d(widths, 3, stem, 7, 2, 3)  # RGB input never sliced
        self.bn1 = SwitchableBatchNorm2d(widths, stem, norm)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = stem
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, last_stride)), 1):
            mid, out = [p[f"layer{i}"] for p in plans], [p[f"layer{i} out"] for p in plans]
            blocks = []
            for j in range(n):
                blocks.append(block(widths, in_ch, mid, out, stride if j == 0 else 1, norm))
                in_ch = blocks[-1].out_channels
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@BACKBONE_REGISTRY.register()
def build_switchable_resnet_backbone(cfg) -> SwitchableResNet:
    """FastReID build function: MODEL.BACKBONE.{DEPTH, LAST_STRIDE, NORM, PRETRAIN[_PATH]}."""
    bb = cfg.MODEL.BACKBONE
    for flag in ("WITH_IBN", "WITH_SE", "WITH_NL"):
        if bb.get(flag, False):
            raise ValueError(f"MODEL.BACKBONE.{flag} is not supported by the switchable ResNet")
    model = SwitchableResNet(model_widths(cfg), bb.DEPTH, bb.LAST_STRIDE, bb.NORM)
    load_pretrained(model, cfg)
    return model
