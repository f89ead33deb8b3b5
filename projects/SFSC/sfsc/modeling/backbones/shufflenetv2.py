"""Switchable ShuffleNetV2 (torchvision layout) registered in FastReID's BACKBONE_REGISTRY.

At width 1.0 the network is torchvision's ``shufflenet_v2_x<m>`` without its classifier, with
the same state-dict names (``conv1``, ``stage2``..``stage4``, ``conv5``), so its ImageNet weights
load directly. At crop ratio γ every stage keeps its leading channels rounded to an even count,
because a unit splits its channels into two equal halves. ``conv5`` (1024 channels at 1.0x) is
sliced like the rest: the SFSC head takes a width-dependent input, and slicing keeps the
sub-model's parameters ≈ γ² of the full model.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

from ...config import model_widths
from ..switchable import SwitchableBatchNorm2d, SwitchableConv2d
from .channels import multiplier, plan_widths, scaled
from .pretrained import load_pretrained
from .shufflenet import channel_shuffle

__all__ = ["SwitchableShuffleNetV2", "build_switchable_shufflenetv2_backbone"]

# Output channels of conv1, stage2..4 and conv5 per multiplier (ShuffleNetV2 paper, Table 5).
_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
             1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}
_REPEATS = (4, 8, 4)


def _conv_bn(widths, in_ch, out_ch, kernel: int, stride: int, groups, norm: str,
             relu: bool) -> List[nn.Module]:
    layers = [SwitchableConv2d(widths, in_ch, out_ch, kernel, stride, (kernel - 1) // 2,
                               groups=groups),
              SwitchableBatchNorm2d(widths, out_ch, norm)]
    return (layers + [nn.ReLU(inplace=True)]) if relu else layers


class SwitchableShuffleV2Unit(nn.Module):
    """ShuffleNetV2 unit. Input (N, in_ch[width], H, W); output (N, out_ch[width], H/s, W/s).

    A stage's first unit (``split`` False) feeds its whole input to two branches; the others
    split it in halves and transform only the second.
    """

    def __init__(self, widths, in_ch: List[int], out_ch: List[int], stride: int, split: bool,
                 norm: str):
        super().__init__()
        half = [c // 2 for c in out_ch]
        self.split = split
        if split:
            self.branch1 = nn.Sequential()
        else:
            self.branch1 = nn.Sequential(
                *_conv_bn(widths, in_ch, in_ch, 3, stride, "depthwise", norm, relu=False),
                *_conv_bn(widths, in_ch, half, 1, 1, 1, norm, relu=True))
        self.branch2 = nn.Sequential(
            *_conv_bn(widths, half if split else in_ch, half, 1, 1, 1, norm, relu=True),
            *_conv_bn(widths, half, half, 3, stride, "depthwise", norm, relu=False),
            *_conv_bn(widths, half, half, 1, 1, 1, norm, relu=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


def _plan(base: float, width: float) -> Dict[str, int]:
    stem, s2, s3, s4, last = _CHANNELS[base]
    return {"conv1": scaled("conv1", stem, width),
            "stages": [scaled(f"stage{k + 2}", c, width, 2) for k, c in enumerate((s2, s3, s4))],
            "conv5": scaled("conv5", last, width)}


class SwitchableShuffleNetV2(nn.Module):
    """ShuffleNetV2 features whose width is switched by :func:`sfsc.modeling.switchable.set_width`.

    Input (N, 3, H, W) normalised images; output (N, out_channels[width], H/32, W/32), or
    H/16, W/16 with ``last_stride`` 1 (the stride of stage 4).
    """

    def __init__(self, widths: Sequence[float], base_multiplier: float = 1.0,
                 last_stride: int = 1, norm: str = "BN"):
        super().__init__()
        if base_multiplier not in _CHANNELS:
            raise ValueError(f"ShuffleNetV2 multiplier must be one of {sorted(_CHANNELS)}")
        self.widths = tuple(float(w) for w in widths)
        plans = plan_widths(f"switchable ShuffleNetV2 ({base_multiplier}x)", self.widths,
                            lambda w: _plan(base_multiplier, w))
        stem = [p["conv1"] for p in plans]
        self.conv1 = nn.Sequential(*_conv_bn(self.widths, 3, stem, 3, 2, 1, norm, relu=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = stem
        for k, repeats in enumerate(_REPEATS):
            out_ch = [p["stages"][k] for p in plans]
            first_stride = last_stride if k == 2 else 2
            units = [SwitchableShuffleV2Unit(self.widths, in_ch, out_ch, first_stride, False,
                                             norm)]
            units += [SwitchableShuffleV2Unit(self.widths, out_ch, out_ch, 1, True, norm)
                      for _ in range(repeats - 1)]
            setattr(self, f"stage{k + 2}", nn.Sequential(*units))
            in_ch = out_ch
        self.out_channels = [p["conv5"] for p in plans]
        self.conv5 = nn.Sequential(*_conv_bn(self.widths, in_ch, self.out_channels, 1, 1, 1, norm,
                                             relu=True))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))


@BACKBONE_REGISTRY.register()
def build_switchable_shufflenetv2_backbone(cfg) -> SwitchableShuffleNetV2:
    """FastReID build function: MODEL.BACKBONE.{DEPTH ("1.0x"), LAST_STRIDE, NORM, PRETRAIN*}."""
    bb = cfg.MODEL.BACKBONE
    base = multiplier("ShuffleNetV2", bb.DEPTH, sorted(_CHANNELS))
    model = SwitchableShuffleNetV2(model_widths(cfg), base, bb.LAST_STRIDE, bb.NORM)
    load_pretrained(model, cfg)
    return model
