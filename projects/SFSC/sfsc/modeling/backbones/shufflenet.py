"""Switchable ShuffleNet (v1, Zhang et al. 2018) registered in FastReID's BACKBONE_REGISTRY.

Default: g = 3 groups at 2.0x (stem 48, stages 480 / 960 / 1920 channels, 4 / 8 / 4 units),
the ShuffleNet of the SFSC paper. A unit is grouped 1×1 conv → BN-ReLU → channel shuffle →
3×3 depthwise conv → BN → grouped 1×1 conv → BN; the bottleneck has a quarter of the unit's
output channels. The first unit of a stage concatenates an average-pooled shortcut with its
branch (so the branch produces ``out - in`` channels); the others add the identity.

Widths: grouped convs keep ``groups`` at every width, so every stage output is a multiple of
4·g (its bottleneck, a quarter of it, then splits into g groups) and the stem a multiple of g
(a stage's first branch produces ``out - stem`` channels, which its grouped conv needs divisible
by g). Channel shuffle reads the channel count from its input, so it works at every width.

Grouped convs slice their weight by leading rows (``MODEL.BACKBONE.GROUP_SLICING`` "leading")
by default, because per-group slicing did not train more compatible sub-models on both SFSC and
BCT-S (behind on BCT-S, within the seed spread on SFSC): benchmarks/shufflenet_grouping/RESULTS.md.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

from ...config import model_widths
from ..switchable import SwitchableBatchNorm2d, SwitchableConv2d
from .channels import multiplier, plan_widths, require, scaled
from .pretrained import load_pretrained

__all__ = ["SwitchableShuffleNet", "build_switchable_shufflenet_backbone", "channel_shuffle"]

# Stage-2 output channels of ShuffleNet 1x per group count (ShuffleNet paper, Table 1);
# stages 3 and 4 double it.
_STAGE2_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
_REPEATS = (4, 8, 4)
# Stem channels per base multiplier, as in the ShuffleNet authors' released models.
_STEM = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
_MULTIPLIERS = (0.5, 1.0, 1.5, 2.0)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups: (N, g·c, H, W) -> (N, c·g, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SwitchableShuffleUnit(nn.Module):
    """ShuffleNet v1 unit. Input (N, in_ch[width], H, W); output (N, out_ch[width], H/s, W/s)."""

    def __init__(self, widths, in_ch: List[int], out_ch: List[int], stride: int, groups: int,
                 first_conv_groups: int, concat: bool, norm: str, group_slicing: str = "leading"):
        super().__init__()
        mid = [c // 4 for c in out_ch]
        branch = [o - i for o, i in zip(out_ch, in_ch)] if concat else out_ch
        self.groups = groups
        self.concat = concat
        self.conv1 = SwitchableConv2d(widths, in_ch, mid, 1, groups=first_conv_groups,
                                      group_slicing=group_slicing)
        self.bn1 = SwitchableBatchNorm2d(widths, mid, norm)
        self.conv2 = SwitchableConv2d(widths, mid, mid, 3, stride, 1, groups="depthwise")
        self.bn2 = SwitchableBatchNorm2d(widths, mid, norm)
        self.conv3 = SwitchableConv2d(widths, mid, branch, 1, groups=groups,
                                      group_slicing=group_slicing)
        self.bn3 = SwitchableBatchNorm2d(widths, branch, norm)
        self.relu = nn.ReLU(inplace=True)
        # stride 1 here only for a stage's first unit under LAST_STRIDE 1: still concatenates
        self.shortcut = nn.AvgPool2d(3, stride, 1) if concat else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.relu(self.bn1(self.conv1(x))), self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.concat:
            return torch.cat((self.shortcut(x), self.relu(out)), 1)
        return self.relu(x + out)


def _plan(groups: int, base: float, width: float) -> Dict[str, object]:
    stage_divisor = 4 * groups
    stem = scaled("conv1", _STEM[base], width, groups)
    stages, previous = [], stem
    for k in range(3):
        full = int(round(_STAGE2_CHANNELS[groups] * 2 ** k * base / stage_divisor)) * stage_divisor
        out = scaled(f"stage{k + 2}", full, width, stage_divisor)
        require(out > previous, f"stage{k + 2}.0.conv3",
                f"the stage would have {out} output channels for {previous} input channels, "
                "leaving its concatenated branch no channels",
                "use a larger width or a larger base multiplier (MODEL.BACKBONE.DEPTH)")
        stages.append(out)
        previous = out
    return {"stem": stem, "stages": stages}


class SwitchableShuffleNet(nn.Module):
    """ShuffleNet v1 features whose width is switched by :func:`sfsc.modeling.switchable.set_width`.

    Input (N, 3, H, W) normalised images; output (N, out_channels[width], H/32, W/32), or
    H/16, W/16 with ``last_stride`` 1 (the stride of stage 4). ``group_slicing``: how the
    grouped 1×1 convs take a narrow width's weight (see :class:`SwitchableConv2d`).
    """

    def __init__(self, widths: Sequence[float], groups: int = 3, base_multiplier: float = 2.0,
                 last_stride: int = 1, norm: str = "BN", group_slicing: str = "leading"):
        super().__init__()
        if groups not in _STAGE2_CHANNELS:
            raise ValueError(f"ShuffleNet groups must be one of {sorted(_STAGE2_CHANNELS)}")
        self.widths = tuple(float(w) for w in widths)
        plans = plan_widths(f"switchable ShuffleNet (g={groups}, {base_multiplier}x)",
                            self.widths, lambda w: _plan(groups, base_multiplier, w))
        stem = [p["stem"] for p in plans]
        self.conv1 = SwitchableConv2d(self.widths, 3, stem, 3, 2, 1)
        self.bn1 = SwitchableBatchNorm2d(self.widths, stem, norm)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = stem
        for k, repeats in enumerate(_REPEATS):
            out_ch = [p["stages"][k] for p in plans]
            units = []
            for j in range(repeats):
                stride = (last_stride if k == 2 else 2) if j == 0 else 1
                # the stem has too few channels to split into groups (ShuffleNet paper, 3.3)
                first_groups = 1 if k == 0 and j == 0 else groups
                units.append(SwitchableShuffleUnit(self.widths, in_ch, out_ch, stride, groups,
                                                   first_groups, j == 0, norm, group_slicing))
                in_ch = out_ch
            setattr(self, f"stage{k + 2}", nn.Sequential(*units))
        self.out_channels = in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.stage4(self.stage3(self.stage2(x)))


@BACKBONE_REGISTRY.register()
def build_switchable_shufflenet_backbone(cfg) -> SwitchableShuffleNet:
    """FastReID build function: MODEL.BACKBONE.{DEPTH ("2.0x"), LAST_STRIDE, NORM, GROUP_SLICING,
    PRETRAIN*}, g 3.

    Torchvision has no ShuffleNet v1 weights: PRETRAIN needs PRETRAIN_PATH, a dense 1.0x state
    dict with this network's parameter names.
    """
    bb = cfg.MODEL.BACKBONE
    base = multiplier("ShuffleNet", bb.DEPTH, _MULTIPLIERS)
    model = SwitchableShuffleNet(model_widths(cfg), 3, base, bb.LAST_STRIDE, bb.NORM,
                                 bb.GROUP_SLICING)
    load_pretrained(model, cfg)
    return model
