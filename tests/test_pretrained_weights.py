"""ImageNet initialisation: where the weights are found, their checksums, the offline message, and
that torchvision's files load into every width. No test reaches the network (conftest sets
SFSC_OFFLINE and an empty TORCH_HOME; the online paths patch the probe and the downloader)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
import urllib.error

import pytest
import torch
import torchvision
from deploy_models import ROOT, tiny_cfg

from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.meta_arch import build_model
from sfsc.engine import SFSCTrainer
from sfsc.modeling.backbones import pretrained
from sfsc.modeling.backbones.pretrained import (
    PretrainedChecksumError,
    PretrainedWeightsError,
    check_pretrained,
    load_torchvision_state,
)
from sfsc.modeling.switchable import width_context

R18 = os.path.join(ROOT, "configs", "Market1501", "sfsc_R18.yml")
WIDTHS = (0.25, 0.5, 0.75, 1.0)


def _hub_file(folder, seed: int = 0):
    """A random torchvision ResNet-18 saved as torch hub names its files; (path, state)."""
    torch.manual_seed(seed)
    reference = torchvision.models.resnet18()
    with torch.no_grad():  # non-trivial BN statistics, so that copying them is visible
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, "partial")
    torch.save(reference.state_dict(), tmp)
    with open(tmp, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    path = os.path.join(folder, f"resnet18-{digest[:8]}.pth")
    os.rename(tmp, path)
    return path, reference


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub of the test's own; torchvision's ResNet-18 URL made to name ``path``."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    assert folder.startswith(str(tmp_path))

    def serve(path):
        url = f"https://download.pytorch.org/models/{os.path.basename(path)}"
        monkeypatch.setitem(pretrained._TORCHVISION["build_switchable_resnet_backbone"], "18x",
                            types.SimpleNamespace(url=url))
    return types.SimpleNamespace(folder=folder, serve=serve)


def _cfg(**backbone):
    cfg = tiny_cfg(R18)
    cfg.MODEL.BACKBONE.PRETRAIN = True
    for key, value in backbone.items():
        setattr(cfg.MODEL.BACKBONE, key, value)
    return cfg


def test_hub_cache_file_initialises_every_width_as_torchvision_computes(hub):
    path, reference = _hub_file(hub.folder)
    hub.serve(path)
    cfg = _cfg(LAST_STRIDE=2)  # torchvision's stride, to compare feature maps
    assert check_pretrained(cfg) == path
    model = build_model(cfg).eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        r = reference
        expected = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))))
        assert torch.allclose(model.backbone(x), expected, atol=1e-5)
        for w in WIDTHS:
            with width_context(model, w):
                c = model.backbone.out_channels[WIDTHS.index(w)]
                bn = model.backbone.layer4[1].bn2.active_bn()
                assert torch.equal(bn.running_mean, reference.layer4[1].bn2.running_mean[:c])
                assert model.backbone(x).shape[1] == c


def test_a_model_narrower_than_the_weights_takes_their_leading_channels(hub):
    # A unified 0.25x model holds only that width: it starts as the 0.25x sub-model of the
    # full network would, from the leading rows / columns of every dense weight.
    path, reference = _hub_file(hub.folder)
    hub.serve(path)
    cfg = _cfg()
    cfg.SFSC.WIDTHS, cfg.SFSC.TRAIN_WIDTH, cfg.SFSC.COMPAT_LOSS = [], 0.25, "none"
    model = build_model(cfg)
    conv = model.backbone.layer2[0].conv1.weight
    dense = reference.layer2[0].conv1.weight
    assert conv.shape[0] < dense.shape[0] and conv.shape[1] < dense.shape[1]
    assert torch.equal(conv, dense[:conv.shape[0], :conv.shape[1]])
    bad = {k: v[:, :1] if k == "layer2.0.conv1.weight" else v for k, v in
           torch.load(path, weights_only=True).items()}  # fewer input channels than needed
    with pytest.raises(ValueError, match="layer2.0.conv1.weight should have shape"):
        load_torchvision_state(model.backbone, bad)


def test_damaged_cache_file_is_a_named_checksum_error(hub):
    path, _ = _hub_file(hub.folder)
    hub.serve(path)
    with open(path, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(PretrainedChecksumError, match=r"Checksum error: .*resnet18-[0-9a-f]{8}"
                       r"\.pth has SHA-256 .*damaged") as e:
        check_pretrained(_cfg())
    assert path in str(e.value) and "MODEL.BACKBONE.PRETRAIN False" in str(e.value)
    with pytest.raises(PretrainedChecksumError):  # the same rule for a file named explicitly
        check_pretrained(_cfg(PRETRAIN_PATH=path))


def test_explicit_path_comes_first_and_needs_no_hash_in_its_name(hub, tmp_path):
    cached, _ = _hub_file(hub.folder, seed=0)
    hub.serve(cached)
    own, reference = _hub_file(str(tmp_path / "mine"), seed=1)
    plain = str(tmp_path / "mine" / "backbone.pth")
    os.rename(own, plain)
    cfg = _cfg(PRETRAIN_PATH=plain)
    assert check_pretrained(cfg) == plain
    model = build_model(cfg)
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    with pytest.raises(PretrainedWeightsError, match="PRETRAIN_PATH 'nowhere.pth' is neither a "
                       "weights file nor a finished tools/pretrain.py folder"):
        check_pretrained(_cfg(PRETRAIN_PATH="nowhere.pth"))
    unfinished = tmp_path / "resnet18-0123456789ab"  # a pretraining folder without its manifest
    unfinished.mkdir()
    with pytest.raises(PretrainedWeightsError, match="nor a finished tools/pretrain.py folder.*"
                       "python tools/pretrain.py --threads 1"):
        check_pretrained(_cfg(PRETRAIN_PATH=str(unfinished)))


def test_offline_without_the_file_says_which_file_where_and_how_to_train_from_scratch():
    cfg = _cfg()
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    with pytest.raises(PretrainedWeightsError) as e:
        check_pretrained(cfg)
    message = str(e.value)
    for part in ("resnet18-f37072fd.pth", "https://download.pytorch.org/models/resnet18-f37072fd"
                 ".pth", os.path.join(folder, "resnet18-f37072fd.pth"), "SFSC_OFFLINE=1",
                 "MODEL.BACKBONE.PRETRAIN_PATH", "MODEL.BACKBONE.PRETRAIN False"):
        assert part in message
    assert not os.path.exists(folder)  # nothing was attempted


def test_unreachable_server_is_detected_by_the_probe_and_never_downloaded(hub, monkeypatch):
    monkeypatch.delenv("SFSC_OFFLINE")
    probes = []

    def no_network(request, timeout):
        probes.append((request.get_method(), request.full_url, timeout))
        raise urllib.error.URLError("Name or service not known")

    def must_not_download(*args, **kwargs):
        raise AssertionError("downloaded although the probe failed")

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(pretrained.torch.hub, "download_url_to_file", must_not_download)
    with pytest.raises(PretrainedWeightsError, match="unreachable: Name or service not known"):
        check_pretrained(_cfg())
    assert probes == [("HEAD", "https://download.pytorch.org/models/resnet18-f37072fd.pth",
                       pretrained._PROBE_TIMEOUT_S)]
    assert pretrained._PROBE_TIMEOUT_S <= 10


def test_online_downloads_once_into_the_cache_with_the_hash_checked(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("SFSC_OFFLINE")
    served, reference = _hub_file(str(tmp_path / "server"))
    hub.serve(served)
    calls = []

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        with open(served, "rb") as src, open(dst, "wb") as out:
            out.write(src.read())

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", lambda request, timeout: Answer())
    monkeypatch.setattr(pretrained.torch.hub, "download_url_to_file", download)
    cfg = _cfg()
    path = check_pretrained(cfg)
    name = os.path.basename(served)
    assert path == os.path.join(hub.folder, name)
    assert calls == [(f"https://download.pytorch.org/models/{name}", path, name[9:17])]
    model = build_model(cfg)  # from the cache: no second download
    assert len(calls) == 1
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)


def test_trainer_stops_before_building_the_dataset():
    cfg = _cfg()  # Market-1501, which is not on this machine: building it would fail otherwise
    with pytest.raises(PretrainedWeightsError, match="resnet18-f37072fd.pth"):
        SFSCTrainer(cfg)


def test_cli_stops_before_anything_is_built(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", R18,
         "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out)], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "projects", "SFSC")))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: MODEL.BACKBONE.PRETRAIN is True" in proc.stderr
    assert "resnet18-f37072fd.pth" in proc.stderr and "MODEL.BACKBONE.PRETRAIN False" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_eval_only_needs_no_imagenet_weights():
    from argparse import Namespace

    from sfsc.engine.defaults import setup_cfg

    args = Namespace(config_file=R18, opts=["MODEL.DEVICE", "cpu"], eval_only=True)
    assert not setup_cfg(args, setup=False).MODEL.BACKBONE.PRETRAIN
    with pytest.raises(PretrainedWeightsError):
        setup_cfg(Namespace(config_file=R18, opts=[], eval_only=False), setup=False)


def _torchvision_builders():
    return {torchvision.models.get_model_weights(n): n
            for n in torchvision.models.list_models(module=torchvision.models)}


_TABLE = [(name, depth) for name, sizes in pretrained._TORCHVISION.items() for depth in sizes]


@pytest.mark.parametrize("name,depth", _TABLE, ids=[f"{n[17:-9]}-{d}" for n, d in _TABLE])
def test_each_named_torchvision_file_has_the_layout_of_its_backbone(name, depth):
    weights = pretrained._TORCHVISION[name][depth]
    dense = torchvision.models.get_model(_torchvision_builders()[type(weights)])
    cfg = tiny_cfg()
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.DEPTH = name, depth
    cfg.SFSC.WIDTHS = [0.25]
    backbone = build_backbone(cfg)
    # every conv of the dense network but none of its classifier is used: not a deeper one
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in dense.modules())
    assert load_torchvision_state(backbone, dense.state_dict()) == convs


def test_a_backbone_without_torchvision_weights_names_the_keys_to_set():
    cfg = _cfg(NAME="build_switchable_shufflenet_backbone", DEPTH="2.0x")
    with pytest.raises(PretrainedWeightsError, match="no ImageNet weights for build_switchable_"
                       "shufflenet_backbone at MODEL.BACKBONE.DEPTH '2.0x'.*PRETRAIN_PATH"):
        check_pretrained(cfg)
    cfg = _cfg(NAME="build_switchable_mobilenetv2_backbone", DEPTH="0.5x")
    with pytest.raises(PretrainedWeightsError, match=r"it has: 1.0x \(mobilenet_v2-b0353104"):
        check_pretrained(cfg)
