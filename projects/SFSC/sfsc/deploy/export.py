"""Export one width of a switchable checkpoint: TorchScript + ONNX + a JSON that describes them."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Optional

from torch import nn

from ..fastreid.checkpoint import atomic_write_bytes
from .feature_model import build_feature_model, count_parameters
from .formats import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, save_onnx, save_torchscript
from .loading import LoadedModel, check_width, checkpoint_id
from .preprocessing import Preprocessing
from .runtime import load_exported
from .verify import TOLERANCE, compare_exported

__all__ = ["ExportResult", "export_submodel", "default_name"]


@dataclass
class ExportResult:
    torchscript: str
    onnx: str
    json: str
    info: dict
    diffs: Dict[str, Dict[int, float]]  # {format: {batch size: max abs diff}}

    @property
    def ok(self) -> bool:
        return all(d <= TOLERANCE for per_batch in self.diffs.values() for d in per_batch.values())


def default_name(cfg, width: float) -> str:
    """File stem of an export: the switchable ResNet, depth 18x, at 0.25 -> ``resnet_18x_w0.25``"""
    backbone = cfg.MODEL.BACKBONE.NAME.replace("build_switchable_", "").replace("_backbone", "")
    return f"{backbone}_{cfg.MODEL.BACKBONE.DEPTH}_w{width:g}"


def _info(loaded: LoadedModel, width: float, feature_model: nn.Module, spec: Preprocessing,
          fold_bn: bool, l2_normalize: bool, files: Dict[str, str]) -> dict:
    cfg = loaded.cfg
    return {
        "format": "sfsc-reid-features",
        "version": 1,
        "files": {k: os.path.basename(v) for k, v in files.items()},
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, spec.height, spec.width]},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", int(feature_model.neck[0].out_channels)],
                   "feature_dim": int(feature_model.neck[0].out_channels),
                   "l2_normalized": l2_normalize},
        "preprocessing": spec.to_json(),
        "width": width,
        "widths_in_checkpoint": [float(w) for w in loaded.model.widths],
        "parameters": count_parameters(feature_model),
        "parameters_switchable_model": count_parameters(loaded.model),
        "batchnorm_folded": fold_bn,
        "onnx_opset": ONNX_OPSET,
        "source": {"checkpoint": loaded.weights,
                   "checkpoint_sha256": checkpoint_id(loaded.weights),
                   "config": loaded.config_file,
                   "backbone": cfg.MODEL.BACKBONE.NAME, "depth": str(cfg.MODEL.BACKBONE.DEPTH),
                   "test_metric": cfg.TEST.METRIC},
    }


def export_submodel(loaded: LoadedModel, width: float, output_dir: str,
                    name: Optional[str] = None, fold_bn: bool = True,
                    l2_normalize: bool = True) -> ExportResult:
    """Write ``<name>.pt``, ``<name>.onnx`` and ``<name>.json`` for ``width`` and verify them.

    The JSON records the preprocessing, the feature dimension and normalisation, the source,
    the parameter count and the verification's max abs differences against the switchable
    model (batch sizes 1 and 3). Raises DeployError for a width the model does not hold.
    """
    width = check_width(loaded.model, width)
    spec = Preprocessing.from_cfg(loaded.cfg)
    feature_model = build_feature_model(loaded.model, width, fold_bn, l2_normalize, spec.size)
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.join(output_dir, name or default_name(loaded.cfg, width))
    files = {"torchscript": stem + ".pt", "onnx": stem + ".onnx"}
    save_torchscript(feature_model, files["torchscript"], spec.size)
    save_onnx(feature_model, files["onnx"], spec.size)
    info = _info(loaded, width, feature_model, spec, fold_bn, l2_normalize, files)
    json_path = stem + ".json"
    _write_json(json_path, info)
    runners = {fmt: load_exported(path, json_path, threads=1) for fmt, path in files.items()}
    diffs = compare_exported(loaded.model, width, runners)
    info["verification"] = {"tolerance": TOLERANCE, "max_abs_diff": {
        fmt: {str(n): d for n, d in per_batch.items()} for fmt, per_batch in diffs.items()}}
    _write_json(json_path, info)
    return ExportResult(files["torchscript"], files["onnx"], json_path, info, diffs)


def _write_json(path: str, data: dict) -> None:
    text = json.dumps(data, indent=2) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
