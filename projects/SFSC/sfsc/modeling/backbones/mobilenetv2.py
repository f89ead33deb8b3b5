"""Switchable MobileNetV2 (torchvision layout) registered in FastReID's BACKBONE_REGISTRY.

At width 1.0 the network is torchvision's ``mobilenet_v2`` feature extractor: same layers,
same parameter count and the same state-dict names (``features.<i>...``), so torchvision's
ImageNet weights load directly. At crop ratio γ every layer keeps its leading channels, rounded
to multiples of 8 like torchvision's width multiplier; depthwise convs keep groups = channels.

The final 1×1 conv (1280 channels) is sliced like every other layer, unlike torchvision's width
multiplier which keeps 1280 below 1.0x: the SFSC head after the backbone takes a width-dependent
input and maps it to a fixed embedding, so nothing needs a fixed backbone output, and slicing it
keeps a sub-model's parameters ≈ γ² of the full model (the 320→1280 conv is its largest layer).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

from ...config import model_widths
from ..switchable import SwitchableBatchNorm2d, SwitchableConv2d
from .channels import make_divisible, multiplier, plan_widths, scaled
from .pretrained import load_pretrained

__all__ = ["SwitchableMobileNetV2", "build_switchable_mobilenetv2_backbone"]

# (expansion t, output channels c, repeats n, stride s) of each stage, from the MobileNetV2 paper.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
_MULTIPLIERS = (0.35, 0.5, 0.75, 1.0, 1.4)
_DIVISOR = 8


class ConvBNReLU6(nn.Sequential):
    """Switchable conv → per-width BN → ReLU6 (names 0 / 1 / 2 as in torchvision)."""

    def __init__(self, widths, in_ch, out_ch, kernel: int, stride: int = 1, groups=1,
                 norm: str = "BN"):
        super().__init__(
            SwitchableConv2d(widths, in_ch, out_ch, kernel, stride, (kernel - 1) // 2,
                             groups=groups),
            SwitchableBatchNorm2d(widths, out_ch, norm),
            nn.ReLU6(inplace=True))


class SwitchableInvertedResidual(nn.Module):
    """1×1 expand (none when t = 1) → 3×3 depthwise → linear 1×1 projection (+ input if same shape).

    Input (N, in_ch[width], H, W); output (N, out_ch[width], H/stride, W/stride).
    """

    def __init__(self, widths, in_ch: List[int], out_ch: List[int], stride: int, expand: int,
                 norm: str):
        super().__init__()
        hidden = [int(round(c * expand)) for c in in_ch]
        layers: List[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU6(widths, in_ch, hidden, 1, norm=norm))
        layers += [ConvBNReLU6(widths, hidden, hidden, 3, stride, "depthwise", norm),
                   SwitchableConv2d(widths, hidden, out_ch, 1),
                   SwitchableBatchNorm2d(widths, out_ch, norm)]
        self.conv = nn.Sequential(*layers)
        # in_ch and out_ch come from the same plan, so they agree at every width or at none
        self.use_res_connect = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


def _plan(base: float, width: float) -> Dict[str, object]:
    stem = scaled("features.0", make_divisible(32 * base, _DIVISOR), width, _DIVISOR)
    stages, first_block = [], 1
    for _, c, n, _ in _STAGES:
        stages.append(scaled(f"features.{first_block}", make_divisible(c * base, _DIVISOR), width,
                             _DIVISOR))
        first_block += n
    last = scaled("features.18", make_divisible(1280 * max(1.0, base), _DIVISOR), width,
                  _DIVISOR)
    return {"stem": stem, "stages": stages, "last": last}


class SwitchableMobileNetV2(nn.Module):
    """MobileNetV2 features whose width is switched by :func:`sfsc.modeling.switchable.set_width`.

    Input (N, 3, H, W) normalised images; output (N, out_channels[width], H/32, W/32), or
    H/16, W/16 with ``last_stride`` 1 (the stride of the 160-channel stage).
    """

    def __init__(self, widths: Sequence[float], base_multiplier: float = 1.0,
                 last_stride: int = 1, norm: str = "BN"):
        super().__init__()
        self.widths = tuple(float(w) for w in widths)
        plans = plan_widths("switchable MobileNetV2", self.widths,
                            lambda w: _plan(base_multiplier, w))
        stem = [p["stem"] for p in plans]
        features: List[nn.Module] = [ConvBNReLU6(self.widths, 3, stem, 3, 2, norm=norm)]
        in_ch = stem
        for k, (t, _, n, s) in enumerate(_STAGES):
            out_ch = [p["stages"][k] for p in plans]
            stride = last_stride if k == len(_STAGES) - 2 else s
            for j in range(n):
                features.append(SwitchableInvertedResidual(
                    self.widths, in_ch, out_ch, stride if j == 0 else 1, t, norm))
                in_ch = out_ch
        self.out_channels = [p["last"] for p in plans]
        features.append(ConvBNReLU6(self.widths, in_ch, self.out_channels, 1, norm=norm))
        self.features = nn.Sequential(*features)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@BACKBONE_REGISTRY.register()
def build_switchable_mobilenetv2_backbone(cfg) -> SwitchableMobileNetV2:
    """FastReID build function: MODEL.BACKBONE.{DEPTH ("1.0x"), LAST_STRIDE, NORM, PRETRAIN*}."""
    bb = cfg.MODEL.BACKBONE
    base = multiplier("MobileNetV2", bb.DEPTH, _MULTIPLIERS)
    model = SwitchableMobileNetV2(model_widths(cfg), base, bb.LAST_STRIDE, bb.NORM)
    load_pretrained(model, cfg)
    return model
