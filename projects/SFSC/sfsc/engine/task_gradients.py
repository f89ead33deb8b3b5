"""Per-task gradients of the shared parameters, in one T×P buffer allocated once.

SFSC needs the gradient of every task (L_ori, L_c1 … L_cm) separately. Each sub-model has its
own forward graph, so T backward passes cost what one backward of the summed loss costs; the
overhead is copying each task's gradient into its row of the buffer. The aggregated update is
written into one flat vector that the parameters' ``.grad`` tensors are views of, so the
optimizer (and GradScaler, gradient clipping) see ordinary ``p.grad`` without another copy.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.distributed as dist

__all__ = ["TaskGradients"]


class TaskGradients:
    """Gradient buffer for ``num_tasks`` tasks over ``params`` (all on one device, fp32)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], num_tasks: int):
        if not params:
            raise ValueError("no trainable parameters")
        self.params: List[torch.nn.Parameter] = list(params)
        device = self.params[0].device
        sizes = [p.numel() for p in self.params]
        self.numel = sum(sizes)
        # Column P holds each task's loss, so that one all-reduce also makes the losses (and
        # the decision to skip a non-finite step) identical on every process.
        self.buffer = torch.zeros(num_tasks, self.numel + 1, device=device)  # (T, P + 1)
        self.grads = self.buffer[:, : self.numel]  # (T, P)
        self.losses = self.buffer[:, self.numel]  # (T,)
        self.flat = torch.zeros(self.numel, device=device)  # (P,) aggregated gradient
        offsets = [0]
        for n in sizes:
            offsets.append(offsets[-1] + n)
        spans = list(zip(offsets[:-1], offsets[1:]))
        self.spans = spans  # (start, end) columns of each parameter
        self._rows = [[self.buffer[t, a:b].view_as(p) for (a, b), p in zip(spans, self.params)]
                      for t in range(num_tasks)]
        self._grads = [self.flat[a:b].view_as(p) for (a, b), p in zip(spans, self.params)]
        self.point_param_grads()

    @property
    def num_tasks(self) -> int:
        return self.buffer.shape[0]

    def compute(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """One backward per task loss (scalars) -> the task gradients (T, P).

        Graphs are retained until the last task, since tasks may share parts of a forward
        (e.g. the original and a compatible loss on the same width).
        """
        if len(losses) != self.num_tasks:
            raise ValueError(f"{len(losses)} task losses for a buffer of {self.num_tasks} tasks")
        last = len(losses) - 1
        for t, loss in enumerate(losses):
            # Passed on directly, so one task's gradients are freed before the next backward.
            self.store(t, torch.autograd.grad(loss, self.params, retain_graph=t < last,
                                              allow_unused=True))
            self.losses[t] = loss.detach().float()
        return self.grads

    def store(self, task: int, grads: Sequence[Optional[torch.Tensor]]) -> None:
        """Copy one task's gradients (shaped like ``params``; None: unused) into row ``task``."""
        for view, grad in zip(self._rows[task], grads):
            if grad is None:  # this task does not touch the parameter
                view.zero_()
            else:
                view.copy_(grad)

    def all_reduce_mean(self) -> None:
        """Average every task's gradient and loss over processes with ONE collective, before
        the projection (projecting per process and then averaging is a different algorithm)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.buffer)
            self.buffer.div_(dist.get_world_size())

    def point_param_grads(self) -> None:
        """Make every ``p.grad`` a view of the aggregated vector (undoes ``zero_grad(None)``)."""
        for p, view in zip(self.params, self._grads):
            if p.grad is not view:
                p.grad = view
