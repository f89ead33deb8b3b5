"""Conflict measures of the SFSC step (per-layer Gram matrices, pair cosines and counts, each
width's accuracy), each against a computation written out here with plain torch."""
import copy
import math

import pytest
import torch
from torch import nn

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation, gram_matrix
from sfsc.engine.conflicts import LayerGram, conflict_scalars, layer_conflict_shares, pair_names
from sfsc.engine.task_gradients import TaskGradients
from sfsc.engine.task_step import TaskGradientTrainer

PAIRS = ["ori-0.25", "ori-0.5", "ori-0.75", "0.25-0.5", "0.25-0.75", "0.5-0.75"]


def _per_layer_reference(per_task, modules):
    """per_task: [{param name: grad}] -> {module: (T, T) float64}, one dot product at a time."""
    out = {}
    for module in modules:
        flat = [torch.cat([g.flatten().double() for n, g in grads.items()
                           if n.rsplit(".", 1)[0] == module]) for grads in per_task]
        out[module] = torch.tensor([[float(a @ b) for b in flat] for a in flat],
                                   dtype=torch.float64)
    return out


def _shares_reference(grams):
    """The share of shared layers that conflict, per pair and for any pair, by loops."""
    t = next(iter(grams.values())).shape[0]
    per_pair = []
    for a in range(t):
        for b in range(a + 1, t):
            shared = [g for g in grams.values() if g[a, a] > 0 and g[b, b] > 0]
            per_pair.append(sum(float(g[a, b]) < 0 for g in shared) / len(shared))
    multi = [g for g in grams.values() if int((g.diagonal() > 0).sum()) >= 2]
    any_pair = sum(any(float(g[a, b]) < 0 and g[a, a] > 0 and g[b, b] > 0
                       for a in range(t) for b in range(a + 1, t)) for g in multi) / len(multi)
    return per_pair + [any_pair]


def test_layer_grams_match_per_layer_products_and_sum_to_the_gram_matrix():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 64, 5), nn.BatchNorm2d(64), nn.Conv2d(64, 8, 3),
                        nn.BatchNorm2d(8), nn.Linear(8, 600))  # large and small parameters
    named = list(net.named_parameters())
    per_task = [{n: torch.randn_like(p) for n, p in named} for _ in range(3)]
    per_task[1]["1.weight"].zero_()  # task 1 does not reach the first BatchNorm
    per_task[1]["1.bias"].zero_()
    per_task[2]["4.weight"] = -per_task[0]["4.weight"]  # tasks 0 and 2 conflict in layer 4
    grads = torch.stack([torch.cat([g[n].flatten() for n, _ in named]) for g in per_task])
    spans, start = [], 0
    for _, p in named:
        spans.append((start, start + p.numel()))
        start += p.numel()
    layers = [n.rsplit(".", 1)[0] for n, _ in named]
    got = LayerGram(spans, layers, grads.device, chunk=1000)(grads)  # several chunks per conv
    reference = _per_layer_reference(per_task, ["0", "1", "2", "3", "4"])
    assert got.dtype == torch.float64 and got.shape == (5, 3, 3)
    for i, module in enumerate(["0", "1", "2", "3", "4"]):
        assert torch.allclose(got[i], reference[module], rtol=1e-10, atol=1e-9), module
    assert torch.allclose(got.sum(0), gram_matrix(grads), rtol=1e-12, atol=1e-9)
    shares = layer_conflict_shares(got).tolist()
    assert shares == pytest.approx(_shares_reference(reference))
    assert shares[1] >= 0.2  # pair (0, 2): at least layer 4 of five


def test_conflict_scalars_name_pairs_and_count_them():
    names = ["ori", "compat@0.25", "compat@0.5", "compat@0.75"]
    assert pair_names(names) == PAIRS
    torch.manual_seed(0)
    g = torch.randn(4, 50, dtype=torch.float64)
    g[1] = -g[0] + 0.1 * g[1]  # ori and 0.25 conflict
    totals = [0] * 6
    for _ in range(2):
        out = conflict_scalars(g @ g.t(), [0.5] * 7, names, totals)
    cos = torch.nn.functional.cosine_similarity(g[:, None], g[None], dim=2)
    a, b = 0, 1
    assert out["cos/ori-0.25"] == pytest.approx(float(cos[a, b])) and out["cos/ori-0.25"] < 0
    assert out["cos/0.5-0.75"] == pytest.approx(float(cos[2, 3]))
    conflicting = [float(cos[a, b]) < 0 for a in range(4) for b in range(a + 1, 4)]
    assert totals == [2 * c for c in conflicting]
    assert out["conflicts"] == sum(conflicting)
    assert out["conflicts_cumulative/ori-0.25"] == 2
    assert out["grad_norm/compat@0.5"] == pytest.approx(float(g[2].norm()))
    assert out["layer_conflict_share"] == 0.5


@pytest.mark.parametrize("aggregation", ["sum", "pcgrad"])
def test_every_run_logs_conflicts_per_pair_and_layer_and_each_widths_accuracy(sfsc_cfg,
                                                                              aggregation):
    sfsc_cfg.SFSC.AGGREGATION = aggregation
    sfsc_cfg.MODEL.HEADS.NUM_CLASSES = 2  # accuracies near 1/2 that differ between widths
    torch.manual_seed(0)
    model = build_model(sfsc_cfg).train()
    batch = {"images": torch.rand(8, 3, 32, 16) * 255, "targets": torch.arange(8) % 2}
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch], optimizer, None,
                                  build_aggregation(sfsc_cfg))
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.run_step()
        logged = {k: v[0] for k, v in storage.latest().items()}
    # The same step written out: a gradient per task, dot products per module.
    with EventStorage(0):
        tasks = reference(batch)
    named = [(n, p) for n, p in reference.named_parameters() if p.requires_grad]
    per_task = []
    for losses in tasks.values():
        grads = torch.autograd.grad(sum(losses.values()), [p for _, p in named],
                                    retain_graph=True, allow_unused=True)
        per_task.append({n: torch.zeros_like(p) if g is None else g
                         for (n, p), g in zip(named, grads)})
    grams = _per_layer_reference(per_task, dict.fromkeys(n.rsplit(".", 1)[0] for n, _ in named))
    whole = sum(grams.values())
    shares = _shares_reference(grams)
    for i, pair in enumerate(PAIRS):
        a, b = [(a, b) for a in range(4) for b in range(a + 1, 4)][i]
        cos = float(whole[a, b]) / math.sqrt(float(whole[a, a]) * float(whole[b, b]))
        assert logged[f"cos/{pair}"] == pytest.approx(cos, rel=1e-4, abs=1e-6), pair
        assert logged[f"conflicts_cumulative/{pair}"] == int(cos < 0), pair
        assert logged[f"layer_conflict_share/{pair}"] == pytest.approx(shares[i]), pair
    assert logged["layer_conflict_share"] == pytest.approx(shares[-1])
    assert 0 < shares[-1] < 1  # some layers conflict, not all
    images = reference.preprocess_image(batch)
    for width in (0.25, 0.5, 0.75, 1.0):
        with torch.no_grad():
            logits = reference._outputs(images, batch["targets"], width)["pred_class_logits"]
        accuracy = float((logits.argmax(1) == batch["targets"]).float().mean())
        assert logged[f"diag/acc@{width:g}"] == pytest.approx(accuracy), width
    assert trainer.state_dict()["pair_conflicts"] == [logged[f"conflicts_cumulative/{p}"]
                                                      for p in PAIRS]


def test_pair_counts_survive_the_trainers_state(sfsc_cfg):
    model = build_model(sfsc_cfg)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [], optimizer, None, build_aggregation(sfsc_cfg))
    trainer.pair_conflicts = [3, 0, 1, 0, 0, 2]
    other = TaskGradientTrainer(model, [], optimizer, None, build_aggregation(sfsc_cfg))
    other.load_state_dict(trainer.state_dict())
    assert other.pair_conflicts == [3, 0, 1, 0, 0, 2]


def test_task_gradient_spans_cover_the_buffer():
    params = [nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(5))]
    buffer = TaskGradients(params, 2)
    assert buffer.spans == [(0, 6), (6, 11)]
