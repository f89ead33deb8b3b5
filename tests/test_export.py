"""export_static: one width of a switchable backbone as a plain network; dense weight loading."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from sfsc.modeling.backbones import (
    SwitchableMobileNetV2,
    SwitchableResNet,
    SwitchableShuffleNet,
    SwitchableShuffleNetV2,
)
from sfsc.modeling.backbones.pretrained import load_torchvision_state
from sfsc.modeling.export import export_static
from sfsc.modeling.switchable import SwitchableConv2d, SwitchableModule, get_width, width_context

WIDTHS = (0.25, 0.5, 0.75, 1.0)
BUILDERS = {
    "resnet18": lambda: SwitchableResNet(WIDTHS, "18x"),
    "resnet50": lambda: SwitchableResNet(WIDTHS, "50x"),
    "mobilenetv2": lambda: SwitchableMobileNetV2(WIDTHS),
    "shufflenet_g3_2x": lambda: SwitchableShuffleNet(WIDTHS),
    "shufflenet_g3_2x_per_group": lambda: SwitchableShuffleNet(WIDTHS, group_slicing="per_group"),
    "shufflenetv2": lambda: SwitchableShuffleNetV2(WIDTHS),
}


def _randomise_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so that mixing up BNs changes outputs."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_static_export_matches_switchable(name):
    torch.manual_seed(0)
    model = BUILDERS[name]()
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    sizes = []
    for w in WIDTHS:
        static = export_static(model, w)
        assert not any(isinstance(m, SwitchableModule) for m in static.modules())
        assert not static.training
        with torch.no_grad(), width_context(model, w):
            expected = model(x)
        with torch.no_grad():
            assert (static(x) - expected).abs().max().item() <= 1e-5
        sizes.append(_n_params(static))
    assert get_width(model) == 1.0  # exporting leaves the switchable model as it was
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[-1] < _n_params(model)  # even 1.0x drops the narrower widths' BNs
    narrow = export_static(model, 0.25)
    conv = next(m for m in narrow.modules() if type(m) is nn.Conv2d and m.in_channels > 3)
    full = next(m for m in model.modules() if isinstance(m, SwitchableConv2d)
                and m.in_channels > 3)
    assert conv.weight.shape[0] < full.weight.shape[0]  # physically smaller, not masked


def test_shufflenet_group_slicing_rules_share_the_full_net_only():
    """Same weights, two rules: the full width is one network, a narrow width is another."""
    torch.manual_seed(0)
    leading = SwitchableShuffleNet(WIDTHS).eval()
    per_group = SwitchableShuffleNet(WIDTHS, group_slicing="per_group").eval()
    per_group.load_state_dict(leading.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        for w in WIDTHS:
            a, b = export_static(leading, w)(x), export_static(per_group, w)(x)
            assert torch.allclose(a, b, atol=1e-5) == (w == 1.0)


def test_export_keeps_train_mode_and_rejects_unknown_width():
    model = SwitchableShuffleNetV2((0.5, 1.0)).train()
    assert export_static(model, 0.5).training
    with pytest.raises(ValueError, match="0.3"):
        export_static(model, 0.3)
    with pytest.raises(ValueError, match="no switchable layers"):
        export_static(nn.Conv2d(3, 3, 1), 1.0)


def test_export_of_a_single_layer():
    conv = SwitchableConv2d((0.5, 1.0), [4, 8], [6, 12], 3, groups=2)
    static = export_static(conv, 0.5)
    assert type(static) is nn.Conv2d and static.weight.shape == (6, 2, 3, 3)


@pytest.mark.parametrize("name,ours,dense", [
    ("mobilenetv2", lambda: SwitchableMobileNetV2(WIDTHS, last_stride=2),
     torchvision.models.mobilenet_v2),
    ("shufflenetv2", lambda: SwitchableShuffleNetV2(WIDTHS, last_stride=2),
     torchvision.models.shufflenet_v2_x1_0),
])
def test_torchvision_weights_give_torchvision_features(name, ours, dense):
    """With torchvision's weights, the 1.0x model computes torchvision's feature map."""
    torch.manual_seed(0)
    reference = dense(weights=None)
    _randomise_bn(reference)
    model = ours()
    assert load_torchvision_state(model, reference.state_dict()) > 0
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        if name == "mobilenetv2":
            expected = reference.features(x)
        else:
            r = reference
            expected = r.conv5(r.stage4(r.stage3(r.stage2(r.maxpool(r.conv1(x))))))
        assert (model(x) - expected).abs().max().item() <= 1e-5
        with width_context(model, 0.5):  # narrower widths run on the leading slices
            assert model(x).shape[1] == model.out_channels[1]
    with pytest.raises(ValueError, match="should have shape"):
        load_torchvision_state(SwitchableMobileNetV2(WIDTHS, 0.5), reference.state_dict())
