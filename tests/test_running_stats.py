"""BatchNorm running statistics averaged over two gloo processes equal torch's own update
applied to the processes' average, computed by hand; the counts stay each process's."""
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from sfsc.engine.running_stats import average_running_stats
from sfsc.fastreid.launch import launch

WORLD = 2
STEPS = 3


def _mini_batch(rank, step):
    """Process ``rank``'s mini-batch at ``step``, (4, 3, 5, 5): other statistics per process."""
    g = torch.Generator().manual_seed(10 * step + rank)
    shift = torch.tensor([1.0, -2.0, float(rank)]).view(1, 3, 1, 1)
    return torch.randn(4, 3, 5, 5, generator=g) * (1 + rank) + shift


class _Norms(nn.Module):
    """BatchNorms with an exponential and a cumulative running average, one that keeps none,
    and a constant buffer of each process's own."""

    def __init__(self, rank):
        super().__init__()
        self.ema = nn.BatchNorm2d(3)
        self.cma = nn.BatchNorm2d(3, momentum=None)
        self.untracked = nn.BatchNorm2d(3, track_running_stats=False)
        self.register_buffer("pixel_mean", torch.full((3,), float(rank)))

    def forward(self, x):
        return [self.ema(x), self.cma(x), self.untracked(x)]


def _average_main(out_dir):
    """Each step: a training forward on this process's mini-batch, then the average."""
    torch.set_num_threads(1)
    rank = dist.get_rank()
    try:
        model = _Norms(rank).train()
        own, averaged = [], []
        for step in range(STEPS):
            model(_mini_batch(rank, step))
            own.append({n: b.clone() for n, b in model.named_buffers()})
            average_running_stats(model)
            averaged.append({n: b.clone() for n, b in model.named_buffers()})
        torch.save({"own": own, "averaged": averaged}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_running_statistics_are_averaged_over_processes(tmp_path):
    launch(_average_main, WORLD, args=(str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    # By hand: torch's update new = (1 − m)·old + m·(batch statistic, the variance unbiased),
    # m = 0.1, or m = 1 / num_batches_tracked for momentum None (the running mean is then the
    # mean of every batch's mean), applied to the processes' average after each step.
    xs = [[_mini_batch(r, t).double().numpy() for t in range(STEPS)] for r in range(WORLD)]
    ema_mean, ema_var = np.zeros(3), np.ones(3)
    step_means, step_vars = [], []
    single = {"ema": nn.BatchNorm2d(3), "cma": nn.BatchNorm2d(3, momentum=None)}
    for t in range(STEPS):
        step_means.append(np.mean([x[t].mean(axis=(0, 2, 3)) for x in xs], axis=0))
        step_vars.append(np.mean([x[t].var(axis=(0, 2, 3), ddof=1) for x in xs], axis=0))
        ema_mean = 0.9 * ema_mean + 0.1 * step_means[-1]
        ema_var = 0.9 * ema_var + 0.1 * step_vars[-1]
        expected = {"ema.running_mean": ema_mean, "ema.running_var": ema_var,
                    "cma.running_mean": np.mean(step_means, axis=0),
                    "cma.running_var": np.mean(step_vars, axis=0)}
        for bn in single.values():  # one process that sees the global batch
            bn(torch.cat([_mini_batch(r, t) for r in range(WORLD)]))
        for rank, r in enumerate(ranks):
            own, averaged = r["own"][t], r["averaged"][t]
            for name, value in expected.items():
                np.testing.assert_allclose(averaged[name].numpy(), value, rtol=1e-5,
                                           err_msg=f"{name}, rank {rank}, step {t}")
                assert not torch.allclose(own[name], ranks[1 - rank]["own"][t][name])
            # num_batches_tracked counts forwards, as many on each process as one process
            # seeing the global batch makes: averaging leaves it, so momentum None weighs the
            # next batch 1 / (t + 2) everywhere, as that one process does.
            for bn in ("ema", "cma"):
                count = averaged[f"{bn}.num_batches_tracked"]
                assert count.item() == t + 1 == single[bn].num_batches_tracked.item()
                assert torch.equal(count, own[f"{bn}.num_batches_tracked"])
                assert torch.allclose(averaged[f"{bn}.running_mean"], single[bn].running_mean,
                                      atol=1e-6)
            assert torch.equal(averaged["pixel_mean"], torch.full((3,), float(rank)))
