"""Cost of SFSC training steps: ``sum`` vs the other aggregations (``pcgrad`` by default; any
SFSC.AGGREGATION) vs a plain single-width step.

The steps run on the same random batch, interleaved (sum, pcgrad, ..., plain, sum, ...) after
warm-up, so that load from other processes hits them alike. The aggregation steps are
TaskGradientTrainer.run_step on one switchable model (SFSC.WIDTHS + the full model); ``plain``
is FastReID's SimpleTrainer.run_step on the same network built with width 1.0 only and the
original loss only, i.e. a non-switchable FastReID step. An aggregation's only work beyond
``sum``'s is its coefficients, also timed alone on the step's Gram matrix.
"""
from __future__ import annotations

import copy
import ctypes
import os
import statistics
import time
from dataclasses import dataclass, field
from itertools import repeat
from typing import List, Sequence

import torch

from fastreid.config import get_cfg
from fastreid.engine.train_loop import SimpleTrainer
from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage

from ...config import add_sfsc_config
from ...engine.aggregation import AGGREGATIONS, build_aggregation
from ...engine.task_step import TaskGradientTrainer
from ...engine.trainer import SFSCTrainer, amp_settings

__all__ = ["Meter", "TrainSpeedSettings", "aggregation_names", "build_cfg", "build_trainers",
           "measure"]

MIB = 2 ** 20


@dataclass
class TrainSpeedSettings:
    """What is timed: ``base_config`` (a config file) with this depth, input size (H, W), batch,
    sub-widths, classes, device and AMP dtype (none | float16 | bfloat16), ``iters`` timed
    rounds after ``warmup`` untimed ones, further KEY VALUE ``opts``, and the aggregations timed
    besides ``sum`` (SFSC.AGGREGATION names; "all": every registered one)."""

    base_config: str
    depth: str = "18x"
    size: Sequence[int] = (128, 64)
    batch: int = 64
    widths: Sequence[float] = (0.25, 0.5, 0.75)
    num_classes: int = 751
    iters: int = 5
    warmup: int = 1
    device: str = "cpu"
    amp: str = "none"
    opts: List[str] = field(default_factory=list)
    aggregations: Sequence[str] = ("pcgrad",)


def aggregation_names(requested: Sequence[str]) -> List[str]:
    """``sum`` first, then the requested names once each ("all": every registered one);
    ValueError for an unknown name."""
    names = sorted(AGGREGATIONS) if "all" in requested else list(requested)
    unknown = [n for n in names if n not in AGGREGATIONS]
    if unknown:
        raise ValueError(f"unknown aggregation(s) {unknown}: not in {sorted(AGGREGATIONS)}")
    return ["sum"] + [n for n in dict.fromkeys(names) if n != "sum"]


def build_cfg(args: TrainSpeedSettings, switchable: bool):
    """``base_config`` with the benchmark's overrides; ``switchable=False``: width 1.0,
    original loss only."""
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(args.base_config)
    cfg.merge_from_list([
        "MODEL.DEVICE", args.device, "MODEL.BACKBONE.DEPTH", args.depth,
        "MODEL.HEADS.NUM_CLASSES", args.num_classes, "INPUT.SIZE_TRAIN", list(args.size),
        "SOLVER.IMS_PER_BATCH", args.batch, "SOLVER.AMP.ENABLED", args.amp != "none",
        "SOLVER.AMP.DTYPE", args.amp if args.amp != "none" else "float16",
        "SFSC.WIDTHS", list(args.widths) if switchable else [],
        "SFSC.COMPAT_LOSS", "evidential" if switchable else "none",
    ] + list(args.opts))
    return cfg


class _Plain(torch.nn.Module):
    """The single-width model as FastReID's SimpleTrainer expects it: data -> loss dict."""

    def __init__(self, model: torch.nn.Module, amp_dtype):
        super().__init__()
        self.model = model
        self.amp_dtype = amp_dtype

    def forward(self, data):
        with torch.autocast(self.model.device.type, self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            return self.model(data)["ori"]


def build_trainers(args: TrainSpeedSettings, batch: dict) -> dict:
    """{aggregation name | "plain": trainer}; the aggregations share one model, as in
    training."""
    cfg = build_cfg(args, switchable=True)
    model = build_model(cfg).train()
    device = model.device
    amp_dtype, scaler = amp_settings(cfg, device)
    trainers = {}
    for name in aggregation_names(args.aggregations):
        cfg.SFSC.AGGREGATION = name
        optimizer, wrapper = SFSCTrainer.build_optimizer(cfg, model)
        trainers[name] = TaskGradientTrainer(model, repeat(batch), optimizer, wrapper,
                                             build_aggregation(cfg), amp_dtype, 5, scaler)
    plain_cfg = build_cfg(args, switchable=False)
    plain = build_model(plain_cfg).train()
    plain.load_state_dict(model.state_dict(), strict=False)  # same weights at width 1.0
    optimizer, wrapper = SFSCTrainer.build_optimizer(plain_cfg, plain)
    # Under AMP the plain step autocasts too, without a loss scaler (its cost is negligible).
    trainers["plain"] = SimpleTrainer(_Plain(plain, amp_dtype).train(), repeat(batch),
                                      optimizer, wrapper)
    return trainers


class Meter:
    """Wall time and peak memory of one call: CUDA's allocator peak, or the peak RSS above the
    RSS before the call on CPU (VmHWM reset through /proc/self/clear_refs)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        try:
            self._libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self._libc = None

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    def __call__(self, fn):
        """-> (wall seconds, process CPU seconds, peak bytes above the start)."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            if self._libc is not None:  # return freed heap, so RSS counts live memory only
                self._libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = self._status("VmRSS")
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        if self.cuda:
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = torch.cuda.max_memory_allocated() if self.cuda else self._status("VmHWM")
        return seconds, cpu, peak - base


def time_projection(trainer: TaskGradientTrainer, meter: Meter) -> float:
    """Seconds of the projection of the step just run, re-run on its gradient buffer: the
    float64 per-layer Gram matrices (L×T×T) and their sum, the coefficients and the T×P
    combine into the update vector."""
    tg = trainer.task_grads

    def project():
        grads = tg.grads
        trainer.aggregation(grads, trainer.layer_gram(grads).sum(0), out=tg.flat)

    return meter(project)[0]


def time_coefficients(trainer: TaskGradientTrainer, repeats: int = 5) -> float:
    """Median seconds of the aggregation's coefficients alone on the last step's Gram matrix
    (a copy of the aggregation: a stateful one keeps the state of its training steps)."""
    grads = trainer.task_grads.grads
    gram = trainer.layer_gram(grads).sum(0).double()
    aggregation = copy.deepcopy(trainer.aggregation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        aggregation.coefficients(gram)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_copies(trainer: TaskGradientTrainer, meter: Meter, grads: list) -> float:
    """Seconds to copy T tasks' gradients (``grads``: shaped like the parameters) into the
    T×P buffer, as TaskGradients.compute does after each backward."""
    tg = trainer.task_grads
    return meter(lambda: [tg.store(t, grads) for t in range(tg.num_tasks)])[0]


def _ratios(values: dict, names: List[str], paired: bool = False) -> dict:
    """``{"<name>/sum": ..., "sum/plain": ...}`` of medians, or medians of per-round ratios."""
    def ratio(a, b):
        if paired:
            return round(statistics.median(x / y for x, y in zip(values[a], values[b])), 3)
        return round(statistics.median(values[a]) / statistics.median(values[b]), 3)
    out = {f"{n}/sum": ratio(n, "sum") for n in names if n != "sum"}
    out["sum/plain"] = ratio("sum", "plain")
    return out


def measure(args: TrainSpeedSettings) -> dict:
    """Median step times (s), CPU times, projection, coefficient and copy times, peak memory
    (MiB) of the steps; the JSON-able result the tool prints."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    h, w = args.size
    batch = {"images": torch.rand(args.batch, 3, h, w) * 255,
             "targets": torch.arange(args.batch) % args.num_classes}
    trainers = build_trainers(args, batch)
    names = [k for k in trainers if k != "plain"]
    meter = Meter(device)
    times = {k: [] for k in trainers}
    cpu_times = {k: [] for k in trainers}
    peaks = {k: [] for k in trainers}
    projection = {k: [] for k in names}
    coefficients, copies = {k: [] for k in names}, []
    grads = None  # stand-ins for autograd's per-task outputs, allocated once
    load_start = os.getloadavg()
    with EventStorage(0) as storage:
        for i in range(args.warmup + args.iters):
            for name, trainer in trainers.items():
                trainer.iter = storage.iter = i
                seconds, cpu, peak = meter(trainer.run_step)
                if i < args.warmup:
                    continue
                times[name].append(seconds)
                cpu_times[name].append(cpu)
                peaks[name].append(peak)
                if name == "plain":
                    continue
                projection[name].append(time_projection(trainer, meter))
                coefficients[name].append(time_coefficients(trainer))
                if name == "sum":
                    if grads is None:
                        grads = [torch.randn_like(p) for p in trainer.task_grads.params]
                    copies.append(time_copies(trainer, meter, grads))
    load_end = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_times.items()}
    coef_med = {k: statistics.median(v) for k, v in coefficients.items()}
    tg = trainers["sum"].task_grads
    result = {
        "depth": args.depth, "input": list(args.size), "batch": args.batch,
        "widths": args.widths, "tasks": tg.num_tasks, "params": tg.numel,
        "device": args.device, "amp": args.amp, "threads": torch.get_num_threads(),
        "iters": args.iters, "warmup": args.warmup,
        "step_s": {k: round(v, 4) for k, v in med.items()},
        "ratio": _ratios(times, names),
        # Per-round ratios of neighbouring steps: less sensitive to drifting machine load.
        "paired_ratio": _ratios(times, names, paired=True),
        # CPU seconds of this process: less inflated than wall time while it waits for cores.
        "step_cpu_s": {k: round(v, 4) for k, v in cpu_med.items()},
        "ratio_cpu": _ratios(cpu_times, names),
        # An aggregation's only work beyond sum's is in its coefficients: they are timed alone
        # too, and as a share of sum's step (what an aggregation adds to it, free of the noise
        # of two whole steps).
        "projection_s": {k: round(statistics.median(v), 4) for k, v in projection.items()},
        "projection_frac": {k: round(statistics.median(v) / med[k], 4)
                            for k, v in projection.items()},
        "coefficients_s": {k: round(v, 6) for k, v in coef_med.items()},
        "coefficients_frac_of_sum_step": {k: round(v / med["sum"], 5)
                                          for k, v in coef_med.items()},
        "copy_s": round(statistics.median(copies), 4),
        "copy_frac": round(statistics.median(copies) / med["sum"], 4),
        "grad_buffer_mib": round((tg.buffer.numel() + tg.flat.numel()) * 4 / MIB, 1),
        "peak_mem_mib": {k: round(max(v) / MIB, 1) for k, v in peaks.items()},
        "peak_mem_kind": "cuda_max_allocated_delta" if meter.cuda else "rss_delta",
        "loadavg_1m": [round(load_start[0], 2), round(load_end[0], 2)],
        "cpus": os.cpu_count(),
        "step_s_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    return result
