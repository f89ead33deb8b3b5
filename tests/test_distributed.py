"""Two gloo processes with half a batch each take the same step as one process with the batch.

Holds for per-sample-mean losses (cross-entropy, evidential) once BatchNorm normalises with
its running statistics (eval mode): in training mode each process would use the statistics of
its own half batch. The step must use ONE collective for the gradients of all tasks; the only
other communication is FastReID's gathering of loss values for logging (_write_metrics).
"""
import argparse
import contextlib
import os
import socket
from collections import Counter

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import setup_cfg
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.trainer import broadcast_model_state

WORLD = 2
BATCH = 16  # the global batch; each process gets BATCH // WORLD
AGGREGATIONS = ("sum", "pcgrad")
COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "gather", "reduce", "scatter",
               "barrier", "all_gather_into_tensor", "reduce_scatter_tensor", "all_to_all")


def _batch():
    g = torch.Generator().manual_seed(1)
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
                # One all-reduce for every task's gradient and loss; FastReID's metric
                # gathering (all_gather of sizes + gather of values) is logging only.
                outside = [name for name, logging in got["calls"] if not logging]
                assert outside == ["all_reduce"], outside
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
