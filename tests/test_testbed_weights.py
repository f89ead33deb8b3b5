"""The testbed's shipped weights: the bytes every benchmark run starts from, on every machine.

The checksum is pinned here, not read from the sidecar, so a replaced file and its replaced
sidecar still fail; a rebuild that changes the file must change this constant and retrain the
benchmark's records with it."""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import torch
import torchvision
from deploy_models import ROOT, tiny_cfg

from fastreid.modeling.backbones import build_backbone
from sfsc.modeling.backbones.pretrained import (
    PretrainedChecksumError,
    PretrainedWeightsError,
    check_pretrained,
)
from sfsc.modeling.switchable import width_key

TESTBED = os.path.join(ROOT, "configs", "SyntheticHard", "Base-SyntheticHard.yml")
SHIPPED = "benchmarks/testbed/weights/resnet18-2affeffe.pth"
SHA256 = "2affeffeef7a09df0fc2ebae110761df25936356f97e49a042c96635821b079c"


def _testbed_cfg(path: str = ""):
    cfg = tiny_cfg(TESTBED)
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = path or os.path.join(ROOT, SHIPPED)
    return cfg


def test_the_testbed_names_the_shipped_file_whose_checksum_is_pinned():
    assert tiny_cfg(TESTBED).MODEL.BACKBONE.PRETRAIN_PATH == SHIPPED
    with open(os.path.join(ROOT, SHIPPED), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == SHA256
    with open(os.path.join(ROOT, SHIPPED + ".sha256")) as f:
        assert f.read().split() == [SHA256, os.path.basename(SHIPPED)]  # `sha256sum -c` format


def test_the_shipped_file_is_a_resnet18_that_initialises_the_full_width():
    state = torch.load(os.path.join(ROOT, SHIPPED), map_location="cpu", weights_only=True)
    dense = torchvision.models.resnet18()
    missing, unexpected = dense.load_state_dict(state, strict=False)
    assert not unexpected and sorted(missing) == ["fc.bias", "fc.weight"]  # a backbone only
    cfg = _testbed_cfg()
    assert check_pretrained(cfg) == os.path.join(ROOT, SHIPPED)
    backbone = build_backbone(cfg)
    assert torch.equal(backbone.conv1.weight, dense.conv1.weight)
    last_bn = backbone.layer4[1].bn2.bn[width_key(1.0)]
    assert torch.equal(last_bn.running_var, dense.layer4[1].bn2.running_var)


@pytest.mark.parametrize("damage", ["flipped byte", "git lfs pointer"])
def test_a_damaged_copy_is_caught_by_its_sidecar_even_without_a_hash_in_its_name(tmp_path,
                                                                                   damage):
    copy = tmp_path / "testbed.pth"  # a name that carries no hash: only the sidecar checks it
    shutil.copy(os.path.join(ROOT, SHIPPED + ".sha256"), str(copy) + ".sha256")
    if damage == "git lfs pointer":
        copy.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{SHA256}\n")
    else:
        data = bytearray(open(os.path.join(ROOT, SHIPPED), "rb").read())
        data[len(data) // 2] ^= 0x01
        copy.write_bytes(bytes(data))
    with pytest.raises(PretrainedChecksumError, match=r"testbed\.pth\.sha256 says 2affeffe.*"
                       "git checkout"):
        check_pretrained(_testbed_cfg(str(copy)))


def test_a_checkout_without_the_shipped_file_is_told_to_restore_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's relative path, from a folder that lacks it
    with pytest.raises(PretrainedWeightsError, match=f"git checkout -- {SHIPPED}"):
        check_pretrained(_testbed_cfg(SHIPPED))
