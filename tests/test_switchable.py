"""Switchable layers: leading-channel slicing, per-width BN, live width switching."""
import pytest
import torch
from torch import nn

from sfsc.modeling.switchable import (
    SwitchableBatchNorm2d,
    SwitchableConv2d,
    SwitchableLinear,
    get_width,
    scale_channels,
    set_width,
    width_context,
    width_key,
)

WIDTHS = (0.25, 0.5, 1.0)


def test_scale_channels_rounds_and_respects_divisor():
    assert [scale_channels(64, w) for w in (0.25, 0.5, 0.75, 1.0)] == [16, 32, 48, 64]
    assert scale_channels(480, 0.25, divisor=3) % 3 == 0
    assert scale_channels(3, 0.1) == 1
    with pytest.raises(ValueError):
        scale_channels(64, 0)


def test_width_key():
    assert [width_key(w) for w in (0.25, 0.5, 1.0)] == ["0_25", "0_5", "1_0"]


def test_conv_uses_leading_channels_of_shared_weight():
    conv = SwitchableConv2d(WIDTHS, [2, 4, 8], [4, 8, 16], 3, padding=1)
    x = torch.randn(2, 8, 5, 5)
    for i, w in enumerate(WIDTHS):
        set_width(conv, w)
        cin, cout = conv.in_channels_list[i], conv.out_channels_list[i]
        expected = torch.nn.functional.conv2d(x[:, :cin], conv.weight[:cout, :cin], padding=1)
        assert torch.allclose(conv(x[:, :cin]), expected)
    assert conv.weight.shape == (16, 8, 3, 3)  # one tensor, shared by all widths


def test_fixed_sides_are_not_sliced():
    stem = SwitchableConv2d(WIDTHS, 3, [4, 8, 16], 3)  # RGB input
    embed = SwitchableLinear(WIDTHS, [4, 8, 16], 32)  # common output dimension
    for i, w in enumerate(WIDTHS):
        set_width(stem, w)
        set_width(embed, w)
        assert stem(torch.randn(1, 3, 5, 5)).shape[1] == stem.out_channels_list[i]
        assert embed(torch.randn(1, embed.in_features_list[i])).shape == (1, 32)


def test_depthwise_groups_follow_the_width():
    conv = SwitchableConv2d(WIDTHS, [4, 8, 16], [4, 8, 16], 3, padding=1, groups="depthwise")
    for i, w in enumerate(WIDTHS):
        set_width(conv, w)
        c = conv.in_channels_list[i]
        assert conv(torch.randn(1, c, 4, 4)).shape == (1, c, 4, 4)
    with pytest.raises(ValueError, match="groups"):
        SwitchableConv2d(WIDTHS, [3, 6, 12], [4, 8, 16], 1, groups=4)


def test_each_width_owns_its_batchnorm():
    bn = SwitchableBatchNorm2d(WIDTHS, [2, 4, 8])
    assert [bn.bn[width_key(w)].num_features for w in WIDTHS] == [2, 4, 8]
    bn.train()
    set_width(bn, 0.5)
    bn(torch.randn(4, 4, 3, 3) + 5)
    assert bn.bn["0_5"].running_mean.abs().sum() > 0
    assert bn.bn["1_0"].running_mean.abs().sum() == 0  # other widths untouched
    assert bn.bn["0_25"].running_mean.abs().sum() == 0


def test_width_switches_live_and_context_restores():
    model = nn.Sequential(SwitchableConv2d(WIDTHS, 3, [2, 4, 8], 1),
                          SwitchableBatchNorm2d(WIDTHS, [2, 4, 8]))
    ids = [id(m) for m in model.modules()]
    assert get_width(model) == 1.0
    with width_context(model, 0.25):
        assert model(torch.randn(1, 3, 2, 2)).shape[1] == 2
    assert get_width(model) == 1.0
    assert [id(m) for m in model.modules()] == ids  # nothing rebuilt
    with pytest.raises(ValueError, match="not one of"):
        set_width(model, 0.3)


def test_to_static_is_physically_smaller_and_equal():
    conv = SwitchableConv2d(WIDTHS, [2, 4, 8], [4, 8, 16], 3, padding=1, bias=True)
    set_width(conv, 0.5)
    static = conv.to_static(1)
    x = torch.randn(2, 4, 6, 6)
    assert isinstance(static, nn.Conv2d) and not isinstance(static, SwitchableConv2d)
    assert static.weight.shape == (8, 4, 3, 3)
    assert torch.allclose(static(x), conv(x))


def _per_group_reference(weight, bias, x, cout, cin, g):
    """Grouped conv built by hand: sub-group j's conv holds rows of the full weight's group j."""
    per_full, per_out, per_in = weight.shape[0] // g, cout // g, cin // g
    outs = []
    for j in range(g):
        rows = slice(j * per_full, j * per_full + per_out)
        w_j = weight[rows, :per_in]  # group j of the full net, its leading rows and inputs
        b_j = bias[rows] if bias is not None else None
        outs.append(torch.nn.functional.conv2d(x[:, j * per_in:(j + 1) * per_in], w_j, b_j,
                                               padding=1))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("bias", [False, True])
def test_per_group_slicing_takes_each_groups_leading_rows(bias):
    # 0.25x keeps 3 of 12 outputs: fewer than a group's 4, where the two rules differ
    conv = SwitchableConv2d(WIDTHS, [3, 6, 12], [3, 6, 12], 3, padding=1, groups=3, bias=bias,
                            group_slicing="per_group")
    leading = SwitchableConv2d(WIDTHS, [3, 6, 12], [3, 6, 12], 3, padding=1, groups=3,
                               bias=bias)
    leading.load_state_dict(conv.state_dict())
    for i, w in enumerate(WIDTHS):
        set_width(conv, w)
        set_width(leading, w)
        cin, cout = conv.in_channels_list[i], conv.out_channels_list[i]
        x = torch.randn(2, cin, 5, 5)
        expected = _per_group_reference(conv.weight, conv.bias, x, cout, cin, 3)
        assert torch.allclose(conv(x), expected, atol=1e-6)
        assert torch.allclose(conv.to_static(i)(x), expected, atol=1e-6)
        if w < 1.0:
            assert not torch.allclose(leading(x), expected, atol=1e-4)
        else:  # the full width is the whole weight under either rule
            assert torch.allclose(leading(x), expected, atol=1e-6)


@pytest.mark.parametrize("groups", [1, "depthwise"])
def test_group_slicing_rules_coincide_without_groups(groups):
    channels = [3, 6, 12]
    a = SwitchableConv2d(WIDTHS, channels, channels, 3, padding=1, groups=groups, bias=True)
    b = SwitchableConv2d(WIDTHS, channels, channels, 3, padding=1, groups=groups, bias=True,
                         group_slicing="per_group")
    b.load_state_dict(a.state_dict())
    for i, w in enumerate(WIDTHS):
        set_width(a, w)
        set_width(b, w)
        x = torch.randn(2, channels[i], 5, 5)
        assert torch.equal(a(x), b(x))
        assert torch.equal(a.to_static(i).weight, b.to_static(i).weight)


def test_unknown_group_slicing_is_rejected():
    with pytest.raises(ValueError, match="group_slicing"):
        SwitchableConv2d(WIDTHS, 12, 12, 1, groups=3, group_slicing="interleaved")
