"""What each width of a switchable model costs once exported: parameters, MACs, file sizes and
measured CPU latency, so that a platform can pick the widest sub-model within its budget."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .feature_model import build_feature_model, count_parameters
from .formats import save_onnx, save_torchscript
from .loading import LoadedModel, check_width
from .macs import count_macs
from .runtime import onnx_runner, torchscript_runner

__all__ = ["RUNTIMES", "measure_widths", "format_table"]

RUNTIMES = ("torchscript", "onnxruntime")


def _runner(runtime: str, files: Dict[str, str], threads: int) -> Callable:
    if runtime == "torchscript":
        return torchscript_runner(files["torchscript"])
    return onnx_runner(files["onnx"], threads)


def _latencies(runners: Dict[float, Callable], images: np.ndarray, repeats: int, warmup: int
               ) -> Dict[float, List[float]]:
    """Seconds per call of each runner; widths interleaved so that they share the same noise."""
    widths = list(runners)
    for _ in range(warmup):  # first calls compile / allocate
        for w in widths:
            runners[w](images)
    times: Dict[float, List[float]] = {w: [] for w in widths}
    for r in range(repeats):
        for w in widths[r % len(widths):] + widths[:r % len(widths)]:  # rotate the order too
            start = time.perf_counter()
            runners[w](images)
            times[w].append(time.perf_counter() - start)
    return times


def measure_widths(loaded: LoadedModel, widths: Optional[Sequence[float]] = None,
                   batch_sizes: Sequence[int] = (1, 32), threads: int = 1, repeats: int = 10,
                   warmup: int = 3, runtime: str = "torchscript", latency: bool = True) -> dict:
    """Cost of the exported (BN-folded, L2-normalising) sub-model of every width.

    Returns a JSON-ready dict: input size, threads, runtime, machine load before / after, and
    per width: parameters, MACs per image at the test input size, ONNX and TorchScript file
    bytes, and per batch size the median latency in ms over ``repeats`` timed calls (+ all).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not one of {RUNTIMES}")
    cfg, model = loaded.cfg, loaded.model
    widths = [check_width(model, w) for w in (widths or model.widths)]
    size = tuple(int(v) for v in cfg.INPUT.SIZE_TEST)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _measure(loaded, widths, size, batch_sizes, threads, repeats, warmup, runtime,
                        latency)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(loaded: LoadedModel, widths: List[float], size: tuple, batch_sizes, threads: int,
             repeats: int, warmup: int, runtime: str, latency: bool) -> dict:
    cfg, model = loaded.cfg, loaded.model
    load_before = os.getloadavg()
    rows: Dict[float, dict] = {}
    runners: Dict[float, Callable] = {}
    with tempfile.TemporaryDirectory(prefix="sfsc-stats-") as tmp:
        for w in widths:
            feature_model = build_feature_model(model, w, input_size=size)
            files = {"torchscript": os.path.join(tmp, f"w{w:g}.pt"),
                     "onnx": os.path.join(tmp, f"w{w:g}.onnx")}
            save_torchscript(feature_model, files["torchscript"], size)
            save_onnx(feature_model, files["onnx"], size)
            rows[w] = {"width": w, "parameters": count_parameters(feature_model),
                       "macs": count_macs(feature_model, size),
                       "onnx_bytes": os.path.getsize(files["onnx"]),
                       "torchscript_bytes": os.path.getsize(files["torchscript"]),
                       "latency_ms": {}, "latency_runs_ms": {}}
            if latency:
                runners[w] = _runner(runtime, files, threads)
        if latency:
            rng = np.random.default_rng(0)
            for n in batch_sizes:
                images = (rng.random((n, 3, *size), dtype=np.float32) * 255)
                for w, times in _latencies(runners, images, repeats, warmup).items():
                    runs = [t * 1000 for t in times]
                    rows[w]["latency_ms"][str(n)] = statistics.median(runs)
                    rows[w]["latency_runs_ms"][str(n)] = runs
    return {"config": loaded.config_file, "weights": loaded.weights,
            "backbone": cfg.MODEL.BACKBONE.NAME, "depth": str(cfg.MODEL.BACKBONE.DEPTH),
            "input_size": list(size), "feature_dim": int(model.heads.feat_dim),
            "threads": threads, "runtime": runtime if latency else None,
            "repeats": repeats, "warmup": warmup, "torch": torch.__version__,
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "cpu_count": os.cpu_count(), "widths": [rows[w] for w in widths]}


def format_table(stats: dict) -> str:
    """Markdown (pipe) table of :func:`measure_widths`'s result, one row per width."""
    from tabulate import tabulate

    rows = stats["widths"]
    full = max(rows, key=lambda r: r["width"])
    batches = list(full["latency_ms"])
    headers = ["width", "params (M)", "MACs (G)", "MACs × full", "ONNX (MiB)", "TorchScript (MiB)"]
    headers += [f"b{n} ms" for n in batches] + [f"b{n} × full" for n in batches]
    table = []
    for r in rows:
        line = [f"{r['width']:.2f}", f"{r['parameters'] / 1e6:.2f}", f"{r['macs'] / 1e9:.3f}",
                f"{r['macs'] / full['macs']:.3f}", f"{r['onnx_bytes'] / 2**20:.1f}",
                f"{r['torchscript_bytes'] / 2**20:.1f}"]
        line += [f"{r['latency_ms'][n]:.1f}" for n in batches]
        line += [f"{r['latency_ms'][n] / full['latency_ms'][n]:.2f}" for n in batches]
        table.append(line)
    return tabulate(table, headers, tablefmt="pipe", disable_numparse=True)
