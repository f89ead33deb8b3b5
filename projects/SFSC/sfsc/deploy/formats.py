"""Write a feature model as TorchScript and ONNX with a dynamic batch dimension.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): it needs only the
``onnx`` package, while the newer exporter also needs ``onnxscript``. ONNX and onnxruntime are
the optional ``export`` extra of this package and are imported only when used.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .errors import DeployError

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ONNX_OPSET", "require", "save_torchscript",
           "save_onnx"]

INPUT_NAME = "images"
OUTPUT_NAME = "features"
ONNX_OPSET = 17


def require(module: str):
    """Import an optional dependency (``onnx``, ``onnxruntime``) or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DeployError(f"the Python package {module!r} is not installed; it is needed for "
                          "ONNX export and inference. Install it with `pip install onnx "
                          "onnxruntime` (or `pip install -e .[export]` in this repository)."
                          ) from None


def _example(input_size, batch: int = 2) -> torch.Tensor:
    # batch 2, not 1: a tracer must not see a size-1 batch it could treat as a constant
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, *input_size, generator=generator) * 255


@torch.no_grad()
def save_torchscript(model: nn.Module, path: str, input_size) -> None:
    """Trace ``model`` (eval mode) on a (2, 3, H, W) input and save it; batch size stays free."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        traced = torch.jit.trace(model.eval(), _example(input_size), check_trace=False)
    traced.save(path)


@torch.no_grad()
def save_onnx(model: nn.Module, path: str, input_size, opset: int = ONNX_OPSET) -> None:
    """Export ``model`` (eval mode) to ONNX: input ``images`` (N, 3, H, W), output ``features``."""
    onnx = require("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model.eval(), (_example(input_size),), path, dynamo=False,
                          opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    onnx.checker.check_model(path)
