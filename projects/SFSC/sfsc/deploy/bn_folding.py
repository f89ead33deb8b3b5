"""Fold every BatchNorm2d whose input is a Conv2d's output into that conv (inference only).

In eval mode BN is an affine map per channel, so ``bn(conv(x))`` equals one conv with scaled
weights and a shifted bias. Which BN follows which conv is found by running the network once
with hooks, not from layer names, so any backbone written as ``bn(conv(x))`` (in a Sequential or
in forward code) is covered. The folded network is checked against the original on the same
input; a conv whose output also feeds something other than its BN would fail that check.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "conv_bn_pairs"]


@torch.no_grad()
def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> List[Tuple[str, str]]:
    """(conv name, bn name) for each BatchNorm2d fed directly by a Conv2d during ``model(example)``.

    A conv called more than once, or whose output tensor reaches a second module, is left out.
    """
    names = {m: n for n, m in model.named_modules()}
    outputs: Dict[int, Tuple[torch.Tensor, nn.Module]] = {}  # tensors kept: ids stay unique
    calls: Dict[nn.Module, int] = {}
    consumers: Dict[nn.Module, List[nn.Module]] = {}

    def after_conv(conv, _inputs, out):
        calls[conv] = calls.get(conv, 0) + 1
        outputs[id(out)] = (out, conv)

    def before_leaf(module, inputs):
        calls.setdefault(module, 0)
        if not isinstance(module, nn.Conv2d):
            calls[module] += 1
        for x in inputs:
            if isinstance(x, torch.Tensor) and id(x) in outputs:
                consumers.setdefault(outputs[id(x)][1], []).append(module)

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(after_conv))
        if not list(m.children()):  # leaves: containers pass tensors on without using them
            handles.append(m.register_forward_pre_hook(before_leaf))
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for conv, used_by in consumers.items():
        bn = used_by[0]
        if (len(used_by) == 1 and isinstance(bn, nn.BatchNorm2d) and calls[conv] == 1
                and calls[bn] == 1 and bn.track_running_stats):
            pairs.append((names[conv], names[bn]))
    return pairs


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor, atol: float = 1e-5) -> int:
    """Fold BNs into their convs in place (model in eval mode); returns how many were folded.

    ``example``: an input of the model, e.g. (2, 3, H, W). Raises RuntimeError if the folded
    model's output differs from the original's by more than ``atol`` relative to its scale.
    """
    if model.training:
        raise ValueError("BatchNorm can only be folded in eval mode (model.eval())")
    before = model(example)
    pairs = conv_bn_pairs(model, example)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _replace(model, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(model, bn_name, nn.Identity())
    after = model(example)
    scale = max(before.abs().max().item(), 1.0)
    error = (after - before).abs().max().item()
    if not error <= atol * scale:
        raise RuntimeError(f"folding {len(pairs)} BatchNorms changed the output by {error:.3g} "
                           f"(scale {scale:.3g}): a folded conv's output is used elsewhere too")
    return len(pairs)
