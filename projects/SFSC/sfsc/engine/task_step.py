"""The SFSC training step: one forward of every sub-model, one gradient per task, one update.

step: losses = model(batch)  ->  G (T×P) = per-task gradients  ->  all-reduce G (DDP)
      (and average the BatchNorm running statistics, see running_stats.py)
      ->  Gram = Σ_layers G_l G_lᵀ (float64)  ->  coefficients c (SFSC.AGGREGATION)
      ->  p.grad = cᵀG  ->  optimizer.step()
      ->  log norms, task weights c, cosines, conflicts (whole model, per layer)
Under AMP every task's loss is scaled by the same GradScaler factor s; the aggregation computes
its coefficients from the unscaled Gram matrix (divided by s², exactly: s is a power of two),
since a weighting's state spans steps of different scales (PCD's moving average of the squared
norms) and its constants (ε) are meant for unscaled gradients, combines the scaled gradients,
and GradScaler unscales / skips / steps once; gradient norms and conflicts are logged unscaled.
The CUDA paths (fp16 + GradScaler, NCCL) share this code but have only been exercised on CPU
(GradScaler("cpu"), bf16, gloo).
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple

import torch

from fastreid.engine.train_loop import SimpleTrainer
from fastreid.utils import comm
from fastreid.utils.events import get_event_storage

from .aggregation import Aggregation
from .conflicts import LayerGram, conflict_scalars, layer_conflict_shares, task_pairs
from .running_stats import RunningStatsSnapshot, average_running_stats
from .task_gradients import TaskGradients

logger = logging.getLogger(__name__)

__all__ = ["TaskGradientTrainer", "NonFiniteTrainingError"]


class NonFiniteTrainingError(FloatingPointError):
    """Too many consecutive steps with non-finite losses or gradients."""


class TaskGradientTrainer(SimpleTrainer):
    """FastReID ``SimpleTrainer`` whose step aggregates per-task gradients.

    Args:
        model: a :class:`SwitchableBaseline` (not DDP-wrapped: gradients are synchronised here).
        aggregation: the strategy turning T task gradients into one update.
        amp_dtype: None (fp32), torch.float16 (CUDA, with GradScaler) or torch.bfloat16.
        max_nonfinite: consecutive skipped steps after which training stops.
    """

    def __init__(self, model, data_loader, optimizer, param_wrapper, aggregation: Aggregation,
                 amp_dtype: Optional[torch.dtype] = None, max_nonfinite: int = 5,
                 grad_scaler: Optional[torch.amp.GradScaler] = None):
        super().__init__(model, data_loader, optimizer, param_wrapper)
        self.aggregation = aggregation
        self.amp_dtype = amp_dtype
        self.grad_scaler = grad_scaler
        self.max_nonfinite = max_nonfinite
        self.task_names = None
        self.task_grads: Optional[TaskGradients] = None
        self.layer_gram: Optional[LayerGram] = None
        self.conflicts_total = 0
        self.pair_conflicts: List[int] = []  # per task pair (task_pairs order), cumulative
        self.skipped_total = 0
        self._skipped_in_a_row = 0
        self._bn_snapshot = RunningStatsSnapshot()

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.model.device.type, dtype=self.amp_dtype)

    def run_step(self) -> None:
        assert self.model.training, "[TaskGradientTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        self.model.iteration = self.iter
        self._bn_snapshot.save(self.model)  # a skipped step puts these back
        with self._autocast():
            tasks = self.model(data)
        losses = [sum(d.values()) for d in tasks.values()]
        if self.task_grads is None:
            self.task_names = list(tasks)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            self.task_grads = TaskGradients(params, len(losses))
            names = {id(p): name for name, p in self.model.named_parameters()}
            layers = [names.get(id(p), "?").rsplit(".", 1)[0] for p in params]
            self.layer_gram = LayerGram(self.task_grads.spans, layers, params[0].device)
        scaled = [self.grad_scaler.scale(loss) for loss in losses] if self.grad_scaler else losses
        grads = self.task_grads.compute(scaled)
        # The forward updated each process's BatchNorm statistics from its own mini-batch;
        # averaged before any skip, so every process keeps one model. Not before the
        # backward: BatchNorm in eval mode saved its running statistics for it.
        average_running_stats(self.model)
        self.task_grads.all_reduce_mean()
        # float64 (near-orthogonal tasks keep their conflict sign), per layer for the logs; the
        # aggregation sees the whole model's sum.
        layer_grams = self.layer_gram(grads)
        gram = layer_grams.sum(0)
        # Decided on all-reduced values, so every process skips the same steps. Under AMP a
        # non-finite gradient with finite losses is GradScaler's business (it skips and
        # lowers the scale); a non-finite loss is not something a smaller scale fixes.
        if not bool(torch.isfinite(self.task_grads.losses).all()):
            self._skip_step(tasks, "a non-finite loss")
            return
        finite = bool(torch.isfinite(gram).all())
        if self.grad_scaler is None and not finite:
            self._skip_step(tasks, "a non-finite gradient")
            return
        scale = 1.0
        if self.grad_scaler is not None:
            scale = float(self.grad_scaler.get_scale())  # before update() changes it
        if finite:
            # Coefficients from the unscaled Gram matrix, applied to the scaled gradients: the
            # update stays scaled by s for GradScaler to unscale.
            unscaled = gram if self.grad_scaler is None else gram / scale ** 2
            self.aggregation(grads, unscaled, out=self.task_grads.flat)
        else:  # only under GradScaler: it skips the step and lowers the scale
            self.task_grads.flat.fill_(float("nan"))
        self.task_grads.point_param_grads()
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)  # unscales; skips the step on inf / NaN
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self._skipped_in_a_row = 0
        self._write_task_metrics(tasks, layer_grams if finite else None, data_time, scale)

    def _skip_step(self, tasks: Dict[str, Dict[str, torch.Tensor]], why: str) -> None:
        # The forward moved the BatchNorm statistics towards this batch (NaN for a NaN image):
        # a skipped step leaves the model as it found it.
        self._bn_snapshot.restore()
        self.skipped_total += 1
        self._skipped_in_a_row += 1
        values = {f"{t}/{k}": float(v.detach()) for t, d in tasks.items() for k, v in d.items()}
        logger.warning(f"Skipped iteration {self.iter}: {why} ({values}); "
                       f"{self._skipped_in_a_row} in a row, {self.skipped_total} in total")
        if self._skipped_in_a_row >= self.max_nonfinite:
            raise NonFiniteTrainingError(
                f"{self._skipped_in_a_row} consecutive iterations had {why} (last: {values}). "
                "Training stopped. Lower SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS, check "
                "the data, or raise SFSC.MAX_NONFINITE_STEPS.")

    def _write_task_metrics(self, tasks, layer_grams: Optional[torch.Tensor], data_time: float,
                            scale: float = 1.0) -> None:
        """FastReID's loss metrics, then per-task gradient norms, task weights (the
        aggregation's coefficients), cosines and conflicts (whole model and per layer, see
        conflicts.py) unscaled by the loss scale of this step, and the model's diagnostics.
        ``layer_grams`` (L, T, T) None: a step GradScaler skipped."""
        loss_dict = {k: v for d in tasks.values() for k, v in d.items()}
        self._write_metrics(loss_dict, data_time)
        if self.grad_scaler is not None and comm.is_main_process():
            get_event_storage().put_scalar("loss_scale", scale, smoothing_hint=False)
        if layer_grams is None:
            return
        t = layer_grams.shape[-1]
        coefficients = self.aggregation.last_coefficients.to(layer_grams)
        measures = torch.cat([layer_grams.sum(0).flatten(), coefficients,
                              layer_conflict_shares(layer_grams)])
        diagnostics, host = _to_host(getattr(self.model, "diagnostics", {}), "diag/", measures)
        gram = torch.tensor(host[:t * t], dtype=torch.float64).view(t, t) / scale ** 2
        if len(self.pair_conflicts) != len(task_pairs(t)):  # first step (or another task set)
            self.pair_conflicts = [0] * len(task_pairs(t))
        scalars = conflict_scalars(gram, host[t * t + t:], self.task_names, self.pair_conflicts,
                                   weights=host[t * t:t * t + t])
        self.conflicts_total += scalars["conflicts"]
        if comm.is_main_process():
            scalars["conflicts_cumulative"] = self.conflicts_total
            scalars.update(diagnostics)
            get_event_storage().put_scalars(smoothing_hint=False, **scalars)

    def state_dict(self) -> dict:
        state = {"conflicts_total": self.conflicts_total, "skipped_total": self.skipped_total,
                 "pair_conflicts": list(self.pair_conflicts)}
        if hasattr(self.aggregation, "state_dict"):
            state["aggregation"] = self.aggregation.state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.conflicts_total = state.get("conflicts_total", 0)
        self.skipped_total = state.get("skipped_total", 0)
        self.pair_conflicts = list(state.get("pair_conflicts", []))
        if "aggregation" in state and hasattr(self.aggregation, "load_state_dict"):
            self.aggregation.load_state_dict(state["aggregation"])
        if "grad_scaler" in state and self.grad_scaler is not None:
            self.grad_scaler.load_state_dict(state["grad_scaler"])


def _to_host(values: Dict[str, object], prefix: str, measures: torch.Tensor
             ) -> Tuple[Dict[str, float], List[float]]:
    """Scalar tensors (and numbers) as floats named ``prefix + name``, and ``measures`` (n,)
    as a list of n floats.

    Everything crosses to the host in one copy: a float() each would wait for the GPU once per
    value, a few dozen times per step.
    """
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {prefix + k: float(v) for k, v in values.items() if k not in tensors}
    flat = torch.cat([measures.detach().reshape(-1).double()]
                     + [v.detach().reshape(1).to(measures.device, torch.float64)
                        for v in tensors.values()]).tolist()
    n = measures.numel()
    out.update(zip((prefix + k for k in tensors), flat[n:]))
    return out, flat[:n]
