"""BatchNorm running statistics kept identical across processes: averaged in every step.

The model is not wrapped in DistributedDataParallel, so nothing rebroadcasts its buffers each
step; every process would otherwise keep the running mean / variance of its own mini-batches
(at every width, and in the BNNeck), evaluate its test shard with a model of its own, and
checkpoint rank 0's statistics only. Averaging rather than broadcasting rank 0's: with equal
mini-batches, the average of the processes' running means is exactly the running mean one
process would hold after seeing the whole global batch (the update is linear in the batch mean),
and the averaged variance misses only the spread between the mini-batch means. A broadcast
would discard (world − 1)/world of the statistics. SyncBatchNorm would also change the
normalisation inside the step (and cost one collective per BatchNorm layer and width).
"""
from __future__ import annotations

from typing import List

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["average_running_stats"]


def average_running_stats(model: nn.Module) -> None:
    """Average every BatchNorm's ``running_mean`` / ``running_var`` over processes, in place,
    with one collective (a no-op in a single process or without BatchNorm).

    Other buffers are left alone: constants (pixel mean / std) would only pick up rounding,
    and ``num_batches_tracked`` counts the same forwards on every process. The statistics are
    looked up on each call, so a model moved or reloaded since is still the one averaged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    stats: List[torch.Tensor] = [
        stat for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for stat in (m.running_mean, m.running_var)]
    for dtype in sorted({s.dtype for s in stats}, key=str):  # one dtype in practice
        group = [s for s in stats if s.dtype == dtype]
        flat = torch.cat([s.flatten() for s in group])
        dist.all_reduce(flat)
        flat.div_(dist.get_world_size())
        offset = 0
        for s in group:
            s.copy_(flat[offset:offset + s.numel()].view_as(s))
            offset += s.numel()
