"""Two gloo processes with half a batch each take the same step as one process with the batch.

Holds for per-sample-mean losses (cross-entropy, evidential) once BatchNorm normalises with
its running statistics (eval mode): in training mode each process would use the statistics of
its own half batch. The step must use ONE collective for the gradients of all tasks and one for
the BatchNorm statistics; the only other communication is FastReID's gathering of loss values
for logging (_write_metrics). In training mode, the processes still hold one model: identical
parameters and BatchNorm statistics after every step, so a two-process evaluation equals a
one-process evaluation of the checkpoint. A non-finite loss on one process skips the step on
every process and leaves the model as it was, BatchNorm statistics and counts included.
"""
import argparse
import contextlib
import copy
import os
import socket
from collections import Counter

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import setup_cfg
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.trainer import SFSCTrainer, broadcast_model_state
from sfsc.evaluation.feature_extraction import extract_features
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.fastreid.launch import launch

WORLD = 2
BATCH = 16  # the global batch; each process gets BATCH // WORLD
AGGREGATIONS = ("sum", "pcgrad")
COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "gather", "reduce", "scatter",
               "barrier", "all_gather_into_tensor", "reduce_scatter_tensor", "all_to_all")


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"images": torch.rand(BATCH, 3, 32, 16, generator=g) * 255,
            "targets": torch.arange(BATCH) % 8}


def _shard(batch, rank):
    n = BATCH // WORLD
    return {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}


def _model(cfg, seed):
    torch.manual_seed(seed)
    return build_model(cfg)


def _trainer(cfg, model, batch, aggregation, seed):
    """A TaskGradientTrainer with SGD (Adam's first step, ~lr·sign(g), would amplify rounding)."""
    cfg.SFSC.AGGREGATION = aggregation
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    trainer = TaskGradientTrainer(model, [batch], optimizer, None, build_aggregation(cfg, seed))
    trainer.iter = 0
    for m in model.modules():  # after the trainer, which sets the whole model to training
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()  # batch-independent normalisation, so half batches add up to the batch
    return trainer


@contextlib.contextmanager
def _recorded_collectives(trainer):
    """Record every torch.distributed collective as (name, made while logging metrics)."""
    calls, logging = [], [False]
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def recorder(name):
        def wrapper(*args, **kwargs):
            calls.append((name, logging[0]))
            return originals[name](*args, **kwargs)
        return wrapper

    def write_metrics(*args, **kwargs):
        logging[0] = True
        try:
            return type(trainer)._write_metrics(trainer, *args, **kwargs)
        finally:
            logging[0] = False

    for name in COLLECTIVES:
        setattr(dist, name, recorder(name))
    trainer._write_metrics = write_metrics
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
        del trainer._write_metrics


def _worker(rank, port, cfg, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        # SEED -1 draws a seed per process; setup_cfg must make it the one PCGrad uses everywhere.
        seed = setup_cfg(argparse.Namespace(config_file="", opts=["SEED", "-1"]),
                         setup=False).SEED
        result = {"seed": seed}
        with EventStorage(0):
            for aggregation in AGGREGATIONS:
                model = _model(cfg, seed=rank)  # different weights on each process ...
                broadcast_model_state(model)  # ... until the broadcast
                trainer = _trainer(cfg, model, _shard(_batch(), rank), aggregation, seed)
                with _recorded_collectives(trainer) as calls:
                    trainer.run_step()
                result[aggregation] = {
                    "params": {n: p.detach().clone() for n, p in model.named_parameters()},
                    "conflicts": trainer.conflicts_total, "calls": calls,
                    "aggregation": getattr(trainer.aggregation, "state_dict", dict)()}
        result["pids"] = _sampled_pids(BATCH // WORLD)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _sampled_pids(mini_batch, batches=3):
    """Identities of this process's first mini-batches from FastReID's identity sampler
    (8 identities x 4 images, its seed shared by an all_gather)."""
    from fastreid.data.samplers import NaiveIdentitySampler  # needs sfsc's shims first

    items = [(f"img{i}", i // 4, 0) for i in range(32)]
    indices = iter(NaiveIdentitySampler(items, mini_batch, num_instances=4))
    return [[next(indices) // 4 for _ in range(mini_batch)] for _ in range(batches)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_single_process_step(sfsc_cfg, tmp_path):
    sfsc_cfg.SFSC.WIDTHS = [0.25, 0.5]  # three tasks: the fewest for which PCGrad's order matters
    mp.spawn(_worker, args=(_free_port(), sfsc_cfg, str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert ranks[0]["seed"] == ranks[1]["seed"] >= 0

    single = {}
    with EventStorage(0):
        for aggregation in AGGREGATIONS:
            model = _model(sfsc_cfg, seed=0)
            trainer = _trainer(sfsc_cfg, model, _batch(), aggregation, ranks[0]["seed"])
            trainer.run_step()
            single[aggregation] = dict(model.named_parameters())
            for rank in ranks:
                got = rank[aggregation]
                assert got["conflicts"] == trainer.conflicts_total, aggregation
                # PCGrad's visiting orders come from the same generator state everywhere.
                assert got["aggregation"] == getattr(trainer.aggregation, "state_dict", dict)()
                for name, p in model.named_parameters():
                    assert torch.allclose(got["params"][name], p, atol=1e-5), (aggregation, name)
                # One all-reduce for the BatchNorm statistics, one for every task's gradient
                # and loss; FastReID's metric gathering (all_gather of sizes + gather of
                # values) is logging only.
                outside = [name for name, logging in got["calls"] if not logging]
                assert outside == ["all_reduce", "all_reduce"], outside
                assert {name for name, logging in got["calls"] if logging} <= \
                    {"all_gather", "gather"}
    assert trainer.conflicts_total > 0  # PCGrad had conflicts to project
    w = "backbone.conv1.weight"
    assert not torch.allclose(single["sum"][w], single["pcgrad"][w], atol=1e-4)

    # FastReID's identity sampler cuts each global batch (SOLVER.IMS_PER_BATCH) into one
    # mini-batch per process, whole identities each: the processes' identities are disjoint.
    for pids0, pids1 in zip(ranks[0]["pids"], ranks[1]["pids"]):
        assert sorted(Counter(pids0).values()) == sorted(Counter(pids1).values()) == [4, 4]
        assert not set(pids0) & set(pids1)


TRAIN_STEPS = 3


def _bn_train_main(cfg, out_dir):
    """TRAIN_STEPS steps with BatchNorm in training mode on this process's half batches, then
    the two-process evaluation; rank 0 also writes the checkpoint."""
    torch.set_num_threads(1)
    rank = dist.get_rank()
    try:
        model = _model(cfg, seed=rank)
        broadcast_model_state(model)
        cfg.SFSC.AGGREGATION = "pcgrad"
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        batches = [_shard(_batch(seed=s), rank) for s in range(TRAIN_STEPS)]
        trainer = TaskGradientTrainer(model, batches, optimizer, None, build_aggregation(cfg, 0))
        result = {}
        with EventStorage(0):
            for i in range(TRAIN_STEPS):
                trainer.iter = i
                trainer.run_step()
                if i == 0:
                    result["first_step_bn1"] = {n: b.clone() for n, b in model.named_buffers()
                                                if n.startswith("backbone.bn1.")}
        result["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        result["buffers"] = {n: b.clone() for n, b in model.named_buffers()}
        loader, _ = SFSCTrainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
        result["feats"] = extract_features(model, loader, list(model.widths))[0]
        result["test"] = SFSCTrainer.test(cfg, model)
        SFSCCheckpointer(model, out_dir, save_to_disk=rank == 0).save("model_final")
        torch.save(result, os.path.join(out_dir, f"bn_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_processes_in_training_mode_hold_one_model(sfsc_cfg, tmp_path):
    cfg = sfsc_cfg
    cfg.SFSC.WIDTHS = [0.25, 0.5]
    cfg.DATASETS.TESTS = ("SyntheticReIDTiny",)
    cfg.TEST.IMS_PER_BATCH = 64
    cfg.OUTPUT_DIR = ""  # no compatibility.json from the workers
    launch(_bn_train_main, WORLD, args=(cfg, str(tmp_path)))  # the training script's launcher
    ranks = [torch.load(tmp_path / f"bn_rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # Each process saw other images, yet every parameter and statistic is the same everywhere.
    for key in ("params", "buffers"):
        assert ranks[0][key].keys() == ranks[1][key].keys()
        differ = [n for n in ranks[0][key] if not torch.equal(ranks[0][key][n], ranks[1][key][n])]
        assert not differ, (key, differ)
    assert any("running_var" in n for n in ranks[0]["buffers"])

    # Averaged, not one process's: after the first step, the first BatchNorm's running mean
    # (whose input is conv1 of the common starting weights) is the one a single process
    # gets from the whole global batch.
    with EventStorage(0):
        single = _model(cfg, seed=0)
        optimizer = torch.optim.SGD([p for p in single.parameters() if p.requires_grad], lr=0.1)
        trainer = TaskGradientTrainer(single, [_batch(seed=0)], optimizer, None,
                                      build_aggregation(cfg, 0))
        trainer.iter = 0
        trainer.run_step()
    means = [n for n in ranks[0]["first_step_bn1"] if n.endswith("running_mean")]
    assert len(means) == 3  # widths 0.25, 0.5 and 1.0
    single_buffers = dict(single.named_buffers())
    for name in means:
        assert torch.allclose(ranks[0]["first_step_bn1"][name], single_buffers[name],
                              atol=1e-6), name

    # One process evaluating the checkpoint sees what the two processes saw together.
    model = build_model(cfg)
    SFSCCheckpointer(model).load(str(tmp_path / "model_final.pth"))
    loader, _ = SFSCTrainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
    feats = extract_features(model, loader, list(model.widths))[0]
    for width, f in feats.items():
        assert f.shape == ranks[0]["feats"][width].shape
        assert torch.allclose(ranks[0]["feats"][width], f, atol=1e-5), width
    results = SFSCTrainer.test(cfg, model)
    assert results.keys() == ranks[0]["test"].keys()
    # Convolutions round differently at another batch size (features agree to ~1e-6, above),
    # enough to swap two near-tied gallery images deep in a ranking (4e-4 points was seen); a
    # shard gathered out of order would mislabel whole queries, far beyond this tolerance.
    for key, value in results.items():
        assert ranks[0]["test"][key] == pytest.approx(value, abs=0.05), key


def _skip_main(cfg, out_dir):
    """A good step, a step whose batch has a NaN pixel on rank 1 only, a good step; and, from
    a copy taken before the bad step, the same good step (at the same iteration: the KL weight
    follows it) as if the bad batch had never come."""
    torch.set_num_threads(1)
    rank = dist.get_rank()

    def sgd_trainer(model, batches, aggregation):
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        return TaskGradientTrainer(model, batches, optimizer, None, aggregation)

    def state(model):
        return {"bn": {n: b.clone() for n, b in model.named_buffers() if n.endswith(
                    ("running_mean", "running_var", "num_batches_tracked"))},
                "params": {n: p.detach().clone() for n, p in model.named_parameters()}}

    try:
        good0, bad, good1 = (_shard(_batch(seed=s), rank) for s in range(3))
        if rank == 1:
            bad["images"][0, 0, 0, 0] = float("nan")
        model = _model(cfg, seed=rank)
        broadcast_model_state(model)
        for bn in model.backbone.bn1.bn.values():  # every width's: a cumulative average
            bn.momentum = None
        trainer = sgd_trainer(model, [good0, bad, good1], build_aggregation(cfg, 0))
        states = []
        with EventStorage(0):
            for trainer.iter in range(3):
                if trainer.iter == 1:
                    reference = sgd_trainer(copy.deepcopy(model), [good1],
                                            copy.deepcopy(trainer.aggregation))
                trainer.run_step()
                states.append(state(model))
            reference.iter = 2
            reference.run_step()
        torch.save({"states": states, "reference": state(reference.model),
                    "skipped": (trainer.skipped_total, reference.skipped_total)},
                   os.path.join(out_dir, f"skip_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _differ(a, b):
    """The names whose tensors in ``a`` and ``b`` (same names) differ in any bit."""
    assert a.keys() == b.keys()
    return [n for n in a if not torch.equal(a[n], b[n])]


def test_a_nan_on_one_process_skips_the_step_on_every_process(sfsc_cfg, tmp_path):
    sfsc_cfg.SFSC.WIDTHS = [0.25, 0.5]
    sfsc_cfg.SFSC.AGGREGATION = "pcgrad"
    launch(_skip_main, WORLD, args=(sfsc_cfg, str(tmp_path)))
    ranks = [torch.load(tmp_path / f"skip_rank{r}.pt", weights_only=False) for r in range(WORLD)]
    cma = "backbone.bn1.bn.0_25."  # momentum None: the next update's weight is 1 / count
    for rank in ranks:
        assert rank["skipped"] == (1, 0)
        before, after_skip, after_good = rank["states"]
        assert {cma + "running_mean", "heads.bottleneck.1.bn.0_5.running_var"} <= set(before["bn"])
        # Put back on both: rank 0's own batch was fine, but the NaN statistics of rank 1's
        # were averaged into its model.
        for key in ("bn", "params"):
            assert not _differ(after_skip[key], before[key]), key
        assert [s["bn"][cma + "num_batches_tracked"].item() for s in rank["states"]] == [1, 1, 2]
        # The next good step is the one taken had the bad batch never come, bit for bit.
        for key in ("bn", "params"):
            assert not _differ(after_good[key], rank["reference"][key]), key
        assert _differ(after_good["bn"], before["bn"])  # and it moved the statistics
    for key in ("bn", "params"):  # one model on both processes at every step
        for state0, state1 in zip(ranks[0]["states"], ranks[1]["states"]):
            assert not _differ(state0[key], state1[key]), key
