"""The paper's Table 4 (original losses) and Tables 7-8 (width lists) are config overrides of
configs/Market1501/sfsc_R18.yml: each trains one step, every task's loss is finite and the
step changes the weights."""
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc import add_sfsc_config, model_widths
from sfsc.config_checks import check_config

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "Market1501", "sfsc_R18.yml")

VARIANTS = {
    "softmax CE": ["MODEL.LOSSES.NAME", '("CrossEntropyLoss",)'],
    "CE + triplet": ["MODEL.LOSSES.NAME", '("CrossEntropyLoss","TripletLoss")'],
    "Circle loss": ["MODEL.LOSSES.NAME", '("CircleLoss",)'],
    "W = {0.25, 0.45, 0.65, 0.85}": ["SFSC.WIDTHS", "[0.25,0.45,0.65,0.85]"],
    "W = {0.10, 0.25, 0.75}": ["SFSC.WIDTHS", "[0.1,0.25,0.75]"],
}


@pytest.mark.parametrize("opts", VARIANTS.values(), ids=list(VARIANTS))
def test_variant_trains(opts):
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(opts + ["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "4",
                                "MODEL.HEADS.EMBEDDING_DIM", "0",
                                "MODEL.BACKBONE.PRETRAIN", "False"])
    check_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    batch = {"images": torch.rand(8, 3, 64, 32) * 255, "targets": torch.arange(4).repeat(2),
             "camids": torch.zeros(8, dtype=torch.long)}
    with EventStorage(0):  # FastReID logs training statistics into it
        tasks = model(batch)
    assert list(tasks) == ["ori"] + [f"compat@{w:g}" for w in model_widths(cfg) if w < 1]
    names = cfg.MODEL.LOSSES.NAME
    expected = {"CrossEntropyLoss": "loss_cls", "TripletLoss": "loss_triplet",
                "CircleLoss": "loss_circle"}
    assert set(tasks["ori"]) == {expected[n] for n in names}
    total = sum(v for d in tasks.values() for v in d.values())
    assert torch.isfinite(total)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total.backward()
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
