"""Exporting one width: TorchScript and ONNX equal the switchable model, BN folding, CLI errors."""
from __future__ import annotations

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
from deploy_models import ROOT, make_output_dir, randomise_bn, run_tool, tiny_cfg
from torch import nn

from fastreid.modeling.meta_arch import build_model
from sfsc.deploy import (
    LoadedModel,
    build_feature_model,
    count_parameters,
    export_submodel,
    load_switchable,
    verify,
)
from sfsc.deploy.bn_folding import conv_bn_pairs, fold_batchnorm
from sfsc.deploy.runtime import load_exported
from sfsc.deploy.verify import reference_features
from sfsc.modeling.switchable import SwitchableModule

WIDTHS = (0.25, 0.5, 0.75, 1.0)

# Max abs difference of L2-normalised float32 features between an exported file and the
# switchable model (folded BatchNorm and the runtimes' kernels sum in other orders). Stated
# here, not read from the module under test, so that loosening the module's check is caught.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("r18"))
    make_output_dir(tiny_cfg(), folder)
    return folder


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_switchable(model_dir)


def test_every_width_exports_to_files_equal_to_the_switchable_model(loaded, tmp_path):
    assert verify.TOLERANCE <= TOLERANCE  # export_submodel's own verdict is no looser
    for width in WIDTHS:
        result = export_submodel(loaded, width, str(tmp_path))
        assert result.ok, result.diffs
        assert set(result.diffs) == {"torchscript", "onnx"}
        assert all(set(d) == {1, 3} and max(d.values()) <= TOLERANCE
                   for d in result.diffs.values())
        with open(result.json) as f:
            info = json.load(f)
        pre = info["preprocessing"]
        assert (pre["height"], pre["width"]) == (32, 16)
        assert pre["channel_order"] == "RGB" and pre["interpolation"] == "bicubic"
        assert pre["value_range"] == [0.0, 255.0]
        assert pre["mean"] == list(loaded.cfg.MODEL.PIXEL_MEAN)
        assert pre["std"] == list(loaded.cfg.MODEL.PIXEL_STD)
        assert info["output"] == {"name": "features", "shape": ["batch", 32], "feature_dim": 32,
                                  "l2_normalized": True}
        assert info["width"] == width and info["batchnorm_folded"]
        assert info["source"]["checkpoint"] == loaded.weights
        assert 0 < info["parameters"] < info["parameters_switchable_model"]
        assert info["onnx_opset"] >= 17
        assert max(info["verification"]["max_abs_diff"]["onnx"].values()) <= TOLERANCE
    # a batch size neither traced nor verified: the batch dimension is dynamic
    images = torch.rand(5, 3, 32, 16) * 255
    expected = reference_features(loaded.model, 0.25, images)
    for ext in ("pt", "onnx"):
        exported = load_exported(str(tmp_path / f"resnet_18x_w0.25.{ext}"))
        got = exported.run(images.numpy())
        assert got.shape == (5, 32) and np.abs(got - expected).max() <= TOLERANCE


# ResNet is exported above; these run channel shuffles, chunks and depthwise convs
@pytest.mark.parametrize("net", ["MobileNetV2", "ShuffleNet", "ShuffleNetV2"])
def test_every_backbone_exports_with_a_dynamic_batch(net, tmp_path):
    cfg = tiny_cfg(os.path.join(ROOT, "configs", "Market1501", f"sfsc_{net}.yml"),
                   size=(64, 32))
    torch.manual_seed(0)
    model = build_model(cfg)
    randomise_bn(model)
    result = export_submodel(LoadedModel(cfg, model.eval(), "config", None), 0.25,
                             str(tmp_path))
    assert result.ok, result.diffs
    assert result.info["parameters"] < count_parameters(model) / 8


def test_exported_model_is_physically_smaller(loaded):
    sizes = [count_parameters(build_feature_model(loaded.model, w, input_size=(32, 16)))
             for w in WIDTHS]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 8  # ~1/16: both sides of a conv
    small = build_feature_model(loaded.model, 0.25, input_size=(32, 16))
    convs = [m for m in small.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].weight.shape == (16, 3, 7, 7)  # the stem keeps its RGB input
    assert max(c.out_channels for c in convs) == 128  # 512 at 1.0x
    assert not any(isinstance(m, SwitchableModule) for m in small.modules())


def test_bn_folding_is_exact_and_removes_every_bn(loaded):
    kept = build_feature_model(loaded.model, 0.5, fold_bn=False, input_size=(32, 16))
    folded = build_feature_model(loaded.model, 0.5, fold_bn=True, input_size=(32, 16))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in kept.modules())
    assert n_bn == 21  # ResNet-18: 20 in the backbone + the BNNeck
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert count_parameters(folded) < count_parameters(kept)
    images = torch.rand(4, 3, 32, 16) * 255
    with torch.no_grad():
        assert (folded(images) - kept(images)).abs().max() <= 1e-6
        # raw BNNeck features too, not only their directions
        kept.l2_normalize = folded.l2_normalize = False
        raw = kept(images)
        assert (folded(images) - raw).abs().max() <= 1e-5 * max(1.0, raw.abs().max().item())


class _SharedOutput(nn.Module):
    """A conv whose output feeds its BN and also a residual addition."""

    def __init__(self, second_module: bool):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.ReLU()
        self.second_module = second_module

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + (self.relu(y) if self.second_module else y)


def test_folding_never_changes_a_network_whose_conv_output_is_shared():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    net = _SharedOutput(second_module=True)
    net.bn.running_mean.normal_()
    net.eval()
    assert conv_bn_pairs(net, x) == []  # seen by the hooks: left alone
    assert fold_batchnorm(net, x) == 0
    net = _SharedOutput(second_module=False).eval()
    net.bn.running_mean.normal_()
    assert conv_bn_pairs(net, x) == [("conv", "bn")]  # invisible to hooks: caught by the check
    with pytest.raises(RuntimeError, match="used elsewhere"):
        fold_batchnorm(net, x)


def test_keep_bn_and_raw_features(loaded, tmp_path):
    result = export_submodel(loaded, 0.75, str(tmp_path), name="raw", fold_bn=False,
                             l2_normalize=False)
    assert result.ok
    assert not result.info["batchnorm_folded"] and not result.info["output"]["l2_normalized"]
    images = torch.rand(2, 3, 32, 16) * 255
    raw = load_exported(result.onnx).run(images.numpy())
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert np.abs(raw - reference_features(loaded.model, 0.75, images, False)).max() <= 1e-5


def test_cli_exports_and_reports_the_differences(model_dir, tmp_path, capsys):
    assert run_tool("export_submodel", ["--model-dir", model_dir, "--width", "0.5",
                                        "--output-dir", tmp_path, "--name", "w05"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 4 and "onnx         batch 3" in out
    assert sorted(os.listdir(tmp_path)) == ["w05.json", "w05.onnx", "w05.pt"]


def test_cli_exit_status_1_when_verification_fails(model_dir, tmp_path, monkeypatch):
    import sfsc.deploy.export as export

    monkeypatch.setattr(export, "compare_exported", lambda *a, **k: {"onnx": {1: 1e-3}})
    assert run_tool("export_submodel", ["--model-dir", model_dir, "--width", "0.25",
                                        "--output-dir", tmp_path]) == 1


@pytest.mark.parametrize("args,message", [
    (["--model-dir", "{missing}", "--width", "0.25"], "is not a folder"),
    (["--model-dir", "{model}", "--width", "0.3"], "0.25, 0.5, 0.75, 1"),
    (["--model-dir", "{empty}", "--width", "0.25"], "has no config.yaml"),
    (["--config-file", "{model}/config.yaml", "--width", "0.25"], "needs --weights"),
    (["--config-file", "{model}/config.yaml", "--weights", "{model}/config.yaml", "--width",
      "0.25"], "Refusing to load"),
])
def test_cli_user_errors_exit_2_with_the_reason(model_dir, tmp_path, capsys, args, message):
    paths = {"missing": tmp_path / "nope", "model": model_dir, "empty": tmp_path}
    argv = [a.format(**paths) for a in args] + ["--output-dir", tmp_path / "out"]
    assert run_tool("export_submodel", argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_the_script_exits_2_with_one_paragraph(tmp_path, monkeypatch, capsys):
    script = os.path.join(ROOT, "tools", "export_submodel.py")
    monkeypatch.setattr(sys, "argv", [script, "--model-dir", str(tmp_path / "missing"),
                                      "--width", "0.25"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "is not a folder" in err
