"""Switchable backbones: SFSC paper Table 1 parameter counts, every width trains, γ² scaling,
width validation and registration."""
from __future__ import annotations

import functools
import itertools
from typing import Callable, Dict, Tuple

import pytest
import torch
import torchvision
from torch import nn

import sfsc
from fastreid.config import get_cfg
from fastreid.modeling.backbones import build_backbone
from sfsc.modeling.backbones import (
    SwitchableMobileNetV2,
    SwitchableResNet,
    SwitchableShuffleNet,
    SwitchableShuffleNetV2,
)
from sfsc.modeling.backbones.shufflenet import channel_shuffle
from sfsc.modeling.export import export_static
from sfsc.modeling.switchable import (
    SwitchableBatchNorm2d,
    SwitchableConv2d,
    SwitchableLinear,
    set_width,
    width_key,
)

WIDTHS = (0.25, 0.5, 0.75, 1.0)
BUILDERS: Dict[str, Callable[[Tuple[float, ...]], nn.Module]] = {
    "resnet18": lambda w: SwitchableResNet(w, "18x"),
    "resnet50": lambda w: SwitchableResNet(w, "50x"),
    "mobilenetv2": lambda w: SwitchableMobileNetV2(w),
    "shufflenet_g3_2x": lambda w: SwitchableShuffleNet(w, groups=3, base_multiplier=2.0),
    "shufflenetv2": lambda w: SwitchableShuffleNetV2(w),
}



@functools.cache
def cached(name: str, widths: Tuple[float, ...] = WIDTHS) -> nn.Module:
    """A shared instance, only for tests that neither train nor modify it."""
    return BUILDERS[name](widths)


def conv_fc_params(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
               for p in m.parameters(recurse=False))


def bn_params(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
               for p in m.parameters(recurse=False))


def active_params(model: nn.Module, idx: int) -> int:
    """Parameters width ``idx`` uses: its conv slices (from the channel lists) and its own BN."""
    total = 0
    for m in model.modules():
        if isinstance(m, SwitchableConv2d):
            kernel = m.kernel_size[0] * m.kernel_size[1]
            total += (m.out_channels_list[idx] * m.in_channels_list[idx] // m.groups_list[idx]
                      * kernel)
        elif isinstance(m, SwitchableBatchNorm2d):
            total += 2 * m.num_features_list[idx]
    return total


def imagenet_classifier(backbone: nn.Module, dropout: bool = False) -> nn.Module:
    """Backbone → global average pool → (dropout) → 1000-class fc, as torchvision's classifiers."""
    fc = SwitchableLinear(backbone.widths, backbone.out_channels, 1000)
    return nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         *([nn.Dropout(0.2)] if dropout else []), fc)


def shufflenet_v1_reference(groups=3, stem=48, stages=(480, 960, 1920), repeats=(4, 8, 4),
                            dense_first=True, fc_bias=True, conv_bias=False, stem_bias=False,
                            mid_of_branch=False):
    """(conv+FC, BN) of ShuffleNet v1 with a 1000-class fc, from the ShuffleNet paper's unit.

    The keyword switches give the variants found in public implementations: grouped first 1x1
    conv, fc / conv / stem biases, bottleneck a quarter of the branch instead of the output."""
    conv, bn, inp = 3 * stem * 9 + stem * stem_bias, stem, stem
    for k, (out, n) in enumerate(zip(stages, repeats)):
        for j in range(n):
            branch = out - inp if j == 0 else out
            mid = (branch if mid_of_branch else out) // 4
            first_groups = 1 if k == j == 0 and dense_first else groups
            conv += inp // first_groups * mid + 9 * mid + mid // groups * branch
            conv += (2 * mid + branch) * conv_bias
            bn += 2 * mid + branch
            inp = out
    return conv + stages[-1] * 1000 + 1000 * fc_bias, 2 * bn


# SFSC paper, Table 1: conv+FC and BN parameters (one width) with a 1000-class classifier.
TABLE1 = {
    "resnet18": (11_679_912, 9_600, torchvision.models.resnet18),
    "resnet50": (25_503_912, 53_120, torchvision.models.resnet50),
    # The paper prints 3,470,870 conv+FC, almost surely a typo: torchvision's MobileNetV2, which
    # this one matches layer for layer (test_torchvision_layout), has 3,470,760.
    "mobilenetv2": (3_470_760, 34_112, torchvision.models.mobilenet_v2),
    # g = 3, 2.0x in the ShuffleNet authors' released layout (48-channel stem, dense first 1x1
    # conv, fc with bias). The BN count is the paper's exactly; the paper prints 5,402,826
    # conv+FC, 1,010 (0.02%) more than this architecture has (checked against its closed form
    # below), and no public variant of the network reaches it (test_paper_shufflenet_count).
    # Like its MobileNetV2 figure (3,470,870 for 3,470,760), it differs from the real count in
    # two digits, each printed one too high: 5,40[2],[8]26 for 5,40[1],[8]16.
    "shufflenet_g3_2x": (5_401_816, 48_960, None),
    # Not in the paper: torchvision's ShuffleNetV2 1.0x.
    "shufflenetv2": (2_262_424, 16_180, torchvision.models.shufflenet_v2_x1_0),
}


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_table1_counts(name):
    conv_fc, bn, reference = TABLE1[name]
    single = imagenet_classifier(cached(name, (1.0,)), dropout=name == "mobilenetv2")
    assert (conv_fc_params(single), bn_params(single)) == (conv_fc, bn)
    if reference is not None:
        dense = reference(weights=None)
        assert (conv_fc_params(dense), bn_params(dense)) == (conv_fc, bn)
    else:
        assert shufflenet_v1_reference() == (conv_fc, bn)


def test_paper_shufflenet_count():
    """No ShuffleNet v1 variant with the paper's BN count has the paper's 5,402,826 conv+FC."""
    paper_conv_fc, paper_bn = 5_402_826, 48_960
    misses = []
    for stem in range(3, 199, 3):  # the stem feeds a grouped conv: a multiple of g = 3
        for switches in itertools.product((False, True), repeat=5):
            conv_fc, bn = shufflenet_v1_reference(stem=stem, **dict(zip(
                ("dense_first", "fc_bias", "conv_bias", "stem_bias", "mid_of_branch"), switches)))
            if bn == paper_bn:
                misses.append(abs(conv_fc - paper_conv_fc))
    # 1,056 variants share the BN count (it does not depend on the stem); none is within 10.
    assert len(misses) > 1000 and min(misses) >= 10


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenetv2", "shufflenetv2"])
def test_torchvision_layout(name):
    """Same conv / BN names and shapes as torchvision at 1.0x (the ImageNet fc excluded)."""
    ours, dense = cached(name, (1.0,)), TABLE1[name][2](weights=None)
    convs = {n: tuple(m.weight.shape) for n, m in ours.named_modules()
             if isinstance(m, SwitchableConv2d)}
    bns = {n: m.num_features_list[0] for n, m in ours.named_modules()
           if isinstance(m, SwitchableBatchNorm2d)}
    assert convs == {n: tuple(m.weight.shape) for n, m in dense.named_modules()
                     if isinstance(m, nn.Conv2d)}
    assert bns == {n: m.num_features for n, m in dense.named_modules()
                   if isinstance(m, nn.BatchNorm2d)}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_one_bn_per_width(name):
    """k widths hold k BN sets, the one of width γ as large as a γ-wide net's; convs are shared."""
    multi = cached(name)
    singles = [cached(name, (w,)) for w in WIDTHS]
    assert bn_params(multi) == sum(bn_params(s) for s in singles)
    assert bn_params(singles[-1]) == bn_params(cached(name, (1.0,)))
    assert len(WIDTHS) * bn_params(singles[-1]) > bn_params(multi) > bn_params(singles[-1])
    assert conv_fc_params(multi) == conv_fc_params(singles[-1])
    assert [active_params(multi, i) for i in range(len(WIDTHS))] == \
        [conv_fc_params(s) + bn_params(s) for s in singles]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_width_trains(name):
    torch.manual_seed(0)
    model = BUILDERS[name](WIDTHS).train()
    x = torch.randn(2, 3, 64, 32)
    last_conv = [m for m in model.modules() if isinstance(m, SwitchableConv2d)][-1]
    for i, w in enumerate(WIDTHS):
        model.zero_grad(set_to_none=True)
        set_width(model, w)
        out = model(x)
        assert out.shape == (2, model.out_channels[i], 4, 2)  # stride 16: LAST_STRIDE 1
        out.square().mean().backward()
        grad = last_conv.weight.grad
        cout, cin = last_conv.out_channels_list[i], last_conv.in_channels_list[i]
        assert grad[:cout, :cin].abs().sum() > 0
        assert grad[cout:].abs().sum() == 0 and grad[:, cin:].abs().sum() == 0
        for m in model.modules():
            if isinstance(m, SwitchableBatchNorm2d):
                for key, bn in m.bn.items():
                    assert (bn.weight.grad is not None) == (key == width_key(w))


def _linear_part(model: nn.Module) -> int:
    """Parameters that scale with γ rather than γ²: depthwise convs, BNs, convs on the RGB input."""
    total = 0
    for m in model.modules():
        if isinstance(m, SwitchableConv2d) and (m.depthwise or len(set(m.in_channels_list)) == 1):
            total += m.weight.numel()
        elif isinstance(m, SwitchableBatchNorm2d):
            total += 2 * m.num_features_list[-1]
    return total


def test_params_scale_with_width_squared():
    rows = [f"{'backbone':<18}{'full':>12}" + "".join(f"{f'γ={w}':>22}" for w in WIDTHS[:-1])]
    for name in sorted(BUILDERS):
        model = cached(name)
        full, linear = active_params(model, len(WIDTHS) - 1), _linear_part(model)
        cells = []
        for i, w in enumerate(WIDTHS[:-1]):
            used = active_params(model, i)
            assert used == sum(p.numel() for p in export_static(model, w).parameters())
            ratio = used / (w * w * full)
            # Up to channel rounding, a width uses γ² of the 2-D-sliced convs and γ of the rest.
            assert used == pytest.approx(w * w * (full - linear) + w * linear, rel=0.02)
            # Dense nets are γ²-sized within 2%; depthwise nets keep more at small γ because
            # depthwise convs and BN (3-5% of them at 1.0x) only shrink linearly.
            assert 1 <= ratio < (1.02 if name.startswith("resnet") else 1.16)
            cells.append(f"{used:>12,} ({ratio:.3f}γ²)")
        rows.append(f"{name:<18}{full:>12,}" + "".join(f"{c:>22}" for c in cells))
    print("\nParameters (conv + BN) used at width γ, and their ratio to γ² × full:")
    print("\n".join(rows))


def test_shufflenet_odd_widths_keep_groups():
    """Grouped convs stay 3-group convs and channel shuffle works at widths that round unevenly."""
    widths = (0.1, 0.3, 0.33, 0.45, 0.6, 0.9, 1.0)
    model = SwitchableShuffleNet(widths).eval()
    grouped = [m for m in model.modules() if isinstance(m, SwitchableConv2d)
               and not m.depthwise and m.groups_list[0] == 3]
    assert len(grouped) == 2 * 16 - 1
    for m in grouped:
        assert all(c % 3 == 0 for c in m.in_channels_list + m.out_channels_list)
    with torch.no_grad():
        for i, w in enumerate(widths):
            set_width(model, w)
            assert model(torch.randn(1, 3, 32, 32)).shape[1] == model.out_channels[i]


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_width_the_backbone_cannot_honour_is_rejected_at_build():
    with pytest.raises(ValueError) as err:
        SwitchableShuffleNet((0.01, 1.0))
    message = str(err.value)
    for part in ("width 0.01", "stage3.0.conv3", "Fix:", "smallest width", "0.02"):
        assert part in message
    SwitchableShuffleNet((0.02, 1.0))  # the width the message proposes does build
    with pytest.raises(ValueError, match=r"width 1.5: layer features.0: .*\(0, 1\]"):
        SwitchableMobileNetV2((0.5, 1.5))
    with pytest.raises(ValueError, match="ascending"):
        SwitchableShuffleNetV2((0.5, 0.25))


def _cfg(name: str, depth: str):
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.BACKBONE.DEPTH = depth
    return cfg


@pytest.mark.parametrize("name,depth,cls", [
    ("build_switchable_mobilenetv2_backbone", "1.0x", SwitchableMobileNetV2),
    ("build_switchable_shufflenet_backbone", "2.0x", SwitchableShuffleNet),
    ("build_switchable_shufflenetv2_backbone", "1.0x", SwitchableShuffleNetV2),
])
def test_registered_build_functions(name, depth, cls):
    cfg = _cfg(name, depth)
    model = build_backbone(cfg)
    assert type(model) is cls and model.widths == sfsc.model_widths(cfg)
    assert len(model.out_channels) == len(model.widths)
    cfg.MODEL.BACKBONE.DEPTH = "50x"  # FastReID's default, meaningless for these backbones
    with pytest.raises(ValueError, match="MODEL.BACKBONE.DEPTH '50x'"):
        build_backbone(cfg)


@pytest.mark.parametrize("rule", ["leading", "per_group"])
def test_group_slicing_key_reaches_shufflenet_grouped_convs(rule):
    cfg = _cfg("build_switchable_shufflenet_backbone", "2.0x")
    assert cfg.MODEL.BACKBONE.GROUP_SLICING == "leading"  # the default
    cfg.MODEL.BACKBONE.GROUP_SLICING = rule
    convs = [m for m in build_backbone(cfg).modules() if isinstance(m, SwitchableConv2d)]
    grouped = [m for m in convs if not m.depthwise and m.groups_list[-1] > 1]
    assert grouped and all(m.group_slicing == rule for m in grouped)
    cfg.MODEL.BACKBONE.GROUP_SLICING = "rows"
    with pytest.raises(ValueError, match="group_slicing"):
        build_backbone(cfg)
