"""Dense pretraining for the synthetic testbed (tools/pretrain.py): its file loads into every
width, runs are cached by their parameters, an interrupted run resumes to the same weights, and
the corpus shares no identity with the benchmark datasets."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torchvision
from deploy_models import ROOT, tiny_cfg

from fastreid.modeling.meta_arch import build_model
from sfsc.benchmark.pretraining.corpus import CORPUS_SEED, corpus_params
from sfsc.benchmark.pretraining.dense import PretrainParams, pretrain, run_folder
from sfsc.data.datasets import SyntheticReID, SyntheticReIDTiny
from sfsc.data.layout import plan_dataset
from sfsc.modeling.backbones.pretrained import check_pretrained
from sfsc.modeling.switchable import width_context

TINY = PretrainParams(num_ids=6, images_per_id=(8, 8), image_size=(32, 16), padding=2,
                      batch_size=8, steps=4, warmup_steps=1)
WIDTHS = (0.25, 0.5, 0.75, 1.0)


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pretrained")), str(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def finished(roots):
    return pretrain(TINY, *roots, checkpoint_period=2)


def test_weights_are_torchvision_without_the_classifier_and_load_into_every_width(finished):
    state = torch.load(finished.path, weights_only=True)
    dense = torchvision.models.resnet18()
    missing, unexpected = dense.load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    cfg = tiny_cfg(os.path.join(ROOT, "configs", "Synthetic", "unified_R18.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = finished.path
    cfg.SFSC.WIDTHS = [0.25, 0.5, 0.75]
    assert check_pretrained(cfg) == finished.path  # its name's hash prefix is its checksum
    # The run's folder stands for its weights: configs name it, the same on every machine.
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = os.path.dirname(finished.path)
    assert check_pretrained(cfg) == finished.path
    model = build_model(cfg)
    backbone = model.backbone
    assert torch.equal(backbone.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    for i, w in enumerate(WIDTHS):
        with width_context(model, w):
            c = backbone.out_channels[i]
            bn = backbone.layer4[1].bn2.active_bn()
            assert torch.equal(bn.running_var, state["layer4.1.bn2.running_var"][:c])
            assert torch.equal(bn.weight, state["layer4.1.bn2.weight"][:c])


def test_same_parameters_are_a_cache_hit_others_train_again(roots, finished):
    calls = []
    again = pretrain(TINY, *roots, on_step=calls.append)
    assert again.cached and again.path == finished.path and calls == []
    assert again.manifest["key"] == TINY.key() == finished.manifest["key"]
    other = dataclasses.replace(TINY, base_lr=0.01)
    assert run_folder(roots[0], other) != run_folder(roots[0], TINY)
    assert other.corpus_key() == TINY.corpus_key()  # the corpus is shared, the run is not
    assert dataclasses.replace(TINY, num_ids=7).corpus_key() != TINY.corpus_key()


def test_interrupted_run_resumes_to_the_uninterrupted_weights(roots, finished, tmp_path):
    steps = []

    def stop_at_3(step):
        steps.append(step)
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        pretrain(TINY, str(tmp_path), roots[1], checkpoint_period=2, on_step=stop_at_3)
    assert os.path.isfile(os.path.join(run_folder(str(tmp_path), TINY), "checkpoint.pth"))
    resumed = pretrain(TINY, str(tmp_path), roots[1], checkpoint_period=2, on_step=steps.append)
    assert steps == [1, 2, 3, 3, 4]  # continued after the step-2 checkpoint
    assert not resumed.cached
    a, b = torch.load(resumed.path, weights_only=True), torch.load(finished.path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert os.path.basename(resumed.path) == os.path.basename(finished.path)  # same bytes' hash
    assert not os.path.exists(os.path.join(run_folder(str(tmp_path), TINY), "checkpoint.pth"))


def test_corpus_shares_no_identity_or_camera_with_the_benchmark_datasets():
    corpus = plan_dataset(corpus_params(PretrainParams().num_ids), CORPUS_SEED)
    assert len(corpus.identities) == 1000 and not corpus.test_pids
    for dataset in (SyntheticReID, SyntheticReIDTiny):
        bench = plan_dataset(dataset.params, dataset.default_seed)
        assert CORPUS_SEED != dataset.default_seed
        assert not set(bench.identities) & set(corpus.identities)
        heights = {i.height for i in bench.identities}  # no attribute draw is reused either
        assert not heights & {i.height for i in corpus.identities}
        assert not {c.gains for c in bench.cameras} & {c.gains for c in corpus.cameras}


def test_tool_prints_the_overrides_and_is_a_cache_hit_the_second_time(tmp_path, capsys,
                                                                      monkeypatch):
    from deploy_models import run_tool

    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path / "data"))  # the corpus goes there

    argv = ["--num-ids", "6", "--images-per-id", "8", "8", "--size", "32", "16", "--batch-size",
            "8", "--steps", "2", "--warmup-steps", "1", "--threads", "1",
            "--output-root", str(tmp_path / "out")]
    assert run_tool("pretrain", argv) == 0
    first = capsys.readouterr().out.strip().splitlines()
    assert first[-2].startswith("Done: ")
    path = first[-2][len("Done: "):]
    assert first[-1] == f"MODEL.BACKBONE.PRETRAIN True MODEL.BACKBONE.PRETRAIN_PATH {path}"
    assert run_tool("pretrain", argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2] == f"Cached: {path}"
    assert run_tool("pretrain", argv + ["--num-ids", "2000"]) == 2
    assert "at most 1501 identities" in capsys.readouterr().err
    assert os.listdir(tmp_path / "data") == ["SyntheticPretrain-" + TINY.corpus_key()]
