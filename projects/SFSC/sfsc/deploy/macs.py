"""Exact multiply-accumulate count of a network's Conv2d and Linear layers, by forward hooks."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

__all__ = ["count_macs"]


def _conv_macs(conv: nn.Conv2d, out: torch.Tensor) -> int:
    # each output element: in_channels/groups × kernel area products
    kernel = conv.kernel_size[0] * conv.kernel_size[1]
    return out[0].numel() * (conv.in_channels // conv.groups) * kernel


def _linear_macs(linear: nn.Linear, out: torch.Tensor) -> int:
    return out[0].numel() * linear.in_features


@torch.no_grad()
def count_macs(model: nn.Module, input_size, per_layer: bool = False):
    """Multiply-accumulates of one image (1, 3, H, W) through ``model``'s Conv2d / Linear layers.

    Biases, BatchNorm, activations, pooling and additions are not counted (they are a small,
    memory-bound share). Returns the total, or ``{layer name: MACs}`` with ``per_layer``.
    """
    counts: Dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            rule = _conv_macs if isinstance(m, nn.Conv2d) else _linear_macs

            def hook(module, _inputs, out, name=name, rule=rule):
                counts[name] = counts.get(name, 0) + rule(module, out)

            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, *input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return counts if per_layer else sum(counts.values())
