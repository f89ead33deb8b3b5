"""Run an exported feature model (TorchScript .pt or ONNX .onnx) on batches of images."""
from __future__ import annotations

import json
import os
import warnings
from typing import Callable, NamedTuple

import numpy as np
import torch

from .errors import DeployError
from .formats import INPUT_NAME, require
from .preprocessing import Preprocessing

__all__ = ["ExportedModel", "load_exported", "spec_path", "torchscript_runner", "onnx_runner"]


class ExportedModel(NamedTuple):
    run: Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) float32 0-255 -> (N, D) float32
    preprocessing: Preprocessing
    info: dict  # the export's JSON
    path: str


def spec_path(model_path: str) -> str:
    """The JSON written beside an exported model: same name, extension .json."""
    return os.path.splitext(model_path)[0] + ".json"


def torchscript_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """(N, 3, H, W) float32 -> (N, D) float32 through a TorchScript file (torch's threads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        module = torch.jit.load(path, map_location="cpu").eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(images))).numpy()

    return run


def onnx_runner(path: str, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """The same through onnxruntime on the CPU; ``threads`` > 0 fixes its intra-op threads."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> np.ndarray:
        feed = {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)}
        return session.run(None, feed)[0]

    return run


def load_exported(path: str, spec: str = "", threads: int = 0) -> ExportedModel:
    """Load ``path`` (.pt TorchScript or .onnx) and its JSON (default: beside it).

    ``threads`` > 0 sets onnxruntime's intra-op threads (torch follows torch.set_num_threads).
    """
    if not os.path.isfile(path):
        raise DeployError(f"exported model {path} does not exist; write it with "
                          "tools/export_submodel.py.")
    spec = spec or spec_path(path)
    if not os.path.isfile(spec):
        raise DeployError(f"{spec} does not exist: an exported model needs the JSON written "
                          "beside it (input size, mean / std, feature dimension); pass it with "
                          "--spec if it was moved.")
    try:
        with open(spec) as f:
            info = json.load(f)
        preprocessing = Preprocessing.from_json(info["preprocessing"])
    except DeployError:
        raise
    except (ValueError, KeyError) as e:
        raise DeployError(f"{spec} is not the JSON of an exported model ({e!r}).") from None
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".onnx", ".pt", ".pth", ".torchscript"):
        raise DeployError(f"{path}: unknown model format {ext!r}; expected .pt (TorchScript) or "
                          ".onnx.")
    try:
        run = onnx_runner(path, threads) if ext == ".onnx" else torchscript_runner(path)
    except DeployError:
        raise
    except Exception as e:  # torch / onnxruntime raise their own types for a bad file
        kind = "an ONNX" if ext == ".onnx" else "a TorchScript"
        raise DeployError(f"{path} is not {kind} model ({str(e).strip().splitlines()[0]}); a "
                          "training checkpoint goes with --model-dir or --weights.") from None
    return ExportedModel(run, preprocessing, info, os.path.abspath(path))
