"""The paper's variants are config files or overrides of configs/Market1501/: each takes one
SFSC training step (TaskGradientTrainer with FastReID's optimizer), with exactly the tasks and
losses the variant names, its aggregation, and a weight update that reaches every width.

Table 2 / 6: the shipped method configs; Table 4: the original loss; Tables 7-8: width lists.
"""
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc import add_sfsc_config
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import check_config
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.trainer import SFSCTrainer
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.modeling.meta_arch.old_model import old_model_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "Market1501")


def _compat(loss, widths):
    return {f"compat@{w:g}": {f"loss_{loss}@{w:g}"} for w in widths}


CE = {"ori": {"loss_cls"}}
# name: (config, overrides, {task: its losses}, aggregation)
VARIANTS = {
    "SFSC": ("sfsc_R18.yml", [], {**CE, **_compat("evidential", [0.25, 0.5, 0.75])}, "pcgrad"),
    "w/o our loss": ("sfsc_wo_loss_R18.yml", [], {**CE, **_compat("bct", [0.25, 0.5, 0.75])},
                     "pcgrad"),
    "w/o our aggregation": ("sfsc_wo_aggregation_R18.yml", [],
                            {**CE, **_compat("evidential", [0.25, 0.5, 0.75])}, "sum"),
    "BCT-S": ("bct_s_R18.yml", [], {**CE, **_compat("bct", [0.25, 0.5, 0.75])}, "sum"),
    "BCT one-to-one": ("bct_R18.yml", [], {**CE, **_compat("bct", [0.25])}, "sum"),
    "Asymmetric one-to-one": ("asymmetric_R18.yml", [], {**CE, **_compat("asymmetric", [0.25])},
                              "sum"),
    "Unified": ("unified_R18.yml", [], CE, "sum"),
    "softmax CE": ("sfsc_R18.yml", ["MODEL.LOSSES.NAME", '("CrossEntropyLoss",)'],
                   {**CE, **_compat("evidential", [0.25, 0.5, 0.75])}, "pcgrad"),
    "CE + triplet": ("sfsc_R18.yml", ["MODEL.LOSSES.NAME", '("CrossEntropyLoss","TripletLoss")'],
                     {"ori": {"loss_cls", "loss_triplet"},
                      **_compat("evidential", [0.25, 0.5, 0.75])}, "pcgrad"),
    "Circle loss": ("sfsc_R18.yml", ["MODEL.LOSSES.NAME", '("CircleLoss",)'],
                    {"ori": {"loss_circle"}, **_compat("evidential", [0.25, 0.5, 0.75])},
                    "pcgrad"),
    "W = {0.25, 0.45, 0.65, 0.85}": ("sfsc_R18.yml", ["SFSC.WIDTHS", "[0.25,0.45,0.65,0.85]"],
                                     {**CE, **_compat("evidential", [0.25, 0.45, 0.65, 0.85])},
                                     "pcgrad"),
    "W = {0.10, 0.25, 0.75}": ("sfsc_R18.yml", ["SFSC.WIDTHS", "[0.1,0.25,0.75]"],
                               {**CE, **_compat("evidential", [0.1, 0.25, 0.75])}, "pcgrad"),
}


def _cfg(config, opts, tmp_path):
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, config))
    cfg.merge_from_list(opts + ["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "4",
                                "MODEL.HEADS.EMBEDDING_DIM", "0", "SOLVER.AMP.ENABLED", "False",
                                "MODEL.BACKBONE.PRETRAIN", "False",
                                # no decay: a parameter changes only if a task's gradient reaches it
                                "SOLVER.WEIGHT_DECAY", "0.0", "SOLVER.WEIGHT_DECAY_NORM", "0.0"])
    if cfg.SFSC.OLD_MODEL.WEIGHTS:  # one-to-one: stand in a freshly built old (full) model
        old = build_model(old_model_config(cfg))
        cfg.SFSC.OLD_MODEL.WEIGHTS = str(tmp_path / "old.pth")
        SFSCCheckpointer(old, str(tmp_path)).save("old")
    check_config(cfg)
    return cfg


def _bn_width(name):
    """The width of a switchable BatchNorm parameter ('backbone.bn1.bn.0_25.weight' -> 0.25)."""
    parts = name.split(".")
    return float(parts[parts.index("bn") + 1].replace("_", ".")) if "bn" in parts else None


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
def test_variant_takes_an_sfsc_step_with_its_losses(variant, tmp_path):
    config, opts, expected, aggregation = variant
    cfg = _cfg(config, opts, tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer, param_wrapper = SFSCTrainer.build_optimizer(cfg, model)
    batch = {"images": torch.rand(8, 3, 64, 32) * 255, "targets": torch.arange(4).repeat(2),
             "camids": torch.zeros(8, dtype=torch.long)}
    trainer = TaskGradientTrainer(model, [batch], optimizer, param_wrapper,
                                  build_aggregation(cfg))
    seen = []  # the task losses the step itself computed
    model.register_forward_hook(lambda module, args, out: seen.append(out))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
    assert trainer.aggregation.name == aggregation
    assert trainer.task_names == list(expected)  # the original task first
    (tasks,) = seen
    assert {t: set(d) for t, d in tasks.items()} == expected
    assert all(torch.isfinite(v) for d in tasks.values() for v in d.values())
    names = {n for losses in expected.values() for n in losses}
    logged = {k for k in storage.histories() if k.startswith("loss_")}
    assert logged == (names if len(names) > 1 else set())  # FastReID logs a lone loss as total
    assert storage.histories()["total_loss"].latest() == pytest.approx(
        sum(float(v.detach()) for d in tasks.values() for v in d.values()), rel=1e-5)
    # The update reaches the shared convolutions and the BatchNorms of exactly the trained widths.
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "backbone.conv1.weight" in changed
    trained = {cfg.SFSC.TRAIN_WIDTH} | {float(t.split("@")[1]) for t in expected if "@" in t}
    bn_widths = {_bn_width(n) for n in changed} - {None}
    assert bn_widths == trained
