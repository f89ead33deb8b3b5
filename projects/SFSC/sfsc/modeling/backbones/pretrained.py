"""Initialise a switchable backbone from a dense (torchvision) state dict with the same names."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ..switchable import (
    SwitchableBatchNorm1d,
    SwitchableBatchNorm2d,
    SwitchableConv2d,
    SwitchableLinear,
    width_key,
)

__all__ = ["load_torchvision_state"]

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def load_torchvision_state(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> int:
    """Copy dense weights into ``model``'s switchable layers; returns the number of layers loaded.

    Conv / linear weights are copied whole (every width slices them); each width's BN takes the
    leading channels of the dense BN. Keys the model does not have (e.g. an ImageNet classifier)
    are ignored. Raises ValueError if a switchable layer's weight is missing or has another shape.
    """
    loaded = 0
    for name, module in model.named_modules():
        if isinstance(module, (SwitchableConv2d, SwitchableLinear)):
            for tensor in ("weight", "bias"):
                own = getattr(module, tensor)
                if own is None:
                    continue
                key = f"{name}.{tensor}"
                if key not in state_dict or state_dict[key].shape != own.shape:
                    found = tuple(state_dict[key].shape) if key in state_dict else "nothing"
                    raise ValueError(f"pretrained weights: {key} should have shape "
                                     f"{tuple(own.shape)}, found {found}; they are not those of "
                                     "this architecture at 1.0x")
                own.data.copy_(state_dict[key])
            loaded += 1
        elif isinstance(module, (SwitchableBatchNorm2d, SwitchableBatchNorm1d)):
            for w, c in zip(module.widths, module.num_features_list):
                bn = module.bn[width_key(w)]
                for tensor in _BN_TENSORS:
                    key = f"{name}.{tensor}"
                    if key not in state_dict:
                        raise ValueError(f"pretrained weights lack {key}")
                    getattr(bn, tensor).data.copy_(state_dict[key][:c])
    return loaded
