"""Check that exported files compute the switchable model's features at their width."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.switchable import width_context
from .runtime import ExportedModel

__all__ = ["TOLERANCE", "reference_features", "compare_exported"]

TOLERANCE = 1e-5  # max abs difference of L2-normalised features, float32 on the CPU


@torch.no_grad()
def reference_features(model: nn.Module, width: float, images: torch.Tensor,
                       l2_normalize: bool = True) -> np.ndarray:
    """Features (N, D) of the switchable ``model`` at ``width`` for images (N, 3, H, W) 0-255."""
    was_training = model.training
    model.eval()
    try:
        with width_context(model, width):
            feats = model(images).float()
    finally:
        model.train(was_training)
    return (F.normalize(feats, dim=1) if l2_normalize else feats).numpy()


def compare_exported(model: nn.Module, width: float, exported: Dict[str, ExportedModel],
                     batch_sizes: Sequence[int] = (1, 3), seed: int = 0
                     ) -> Dict[str, Dict[int, float]]:
    """{format: {batch size: max abs difference}} between each exported model and ``model``.

    Inputs are random 0-255 images of the export's input size; several batch sizes show that
    the batch dimension is dynamic. Features are compared as exported (normalised or raw).
    """
    diffs: Dict[str, Dict[int, float]] = {}
    generator = torch.Generator().manual_seed(seed)
    for fmt, runner in exported.items():
        spec = runner.preprocessing
        normalised = bool(runner.info["output"]["l2_normalized"])
        diffs[fmt] = {}
        for n in batch_sizes:
            images = torch.rand(n, 3, *spec.size, generator=generator) * 255
            expected = reference_features(model, width, images, normalised)
            got = runner.run(images.numpy())
            if got.shape != expected.shape:
                diffs[fmt][n] = float("inf")
                continue
            diffs[fmt][n] = float(np.abs(got - expected).max())
    return diffs
