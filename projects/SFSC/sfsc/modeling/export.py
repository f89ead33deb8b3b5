"""Export one width of a switchable model as an ordinary, physically smaller network."""
from __future__ import annotations

import copy

from torch import nn

from .switchable import SwitchableModule, set_width

__all__ = ["export_static"]


def export_static(model: nn.Module, width: float) -> nn.Module:
    """A copy of ``model`` at ``width`` with every switchable layer replaced by its static layer.

    The copy holds only that width's weight slices and BNs, keeps ``model``'s train / eval mode
    and computes what ``model`` computes at ``width``. It works for any model whose forward reads
    channel counts from its tensors (never from a layer's width index), as SFSC's backbones do.
    ``model`` itself is left unchanged. Raises ValueError if ``width`` is not one of its widths.
    """
    static = copy.deepcopy(model)
    set_width(static, width)  # validates width and gives every layer its width index
    if isinstance(static, SwitchableModule):
        static = static.to_static(static.width_idx)
    else:
        # Collect first: replacing children while iterating named_modules() is unsafe. Only
        # outermost switchable modules: a static layer replaces its switchable children too.
        targets = []
        for name, m in static.named_modules():
            inside = any(name.startswith(f"{t}.") for t, _ in targets)
            if isinstance(m, SwitchableModule) and not inside:
                targets.append((name, m))
        for name, module in targets:
            parent_name, _, child = name.rpartition(".")
            setattr(static.get_submodule(parent_name), child, module.to_static(module.width_idx))
    left = [name for name, m in static.named_modules() if isinstance(m, SwitchableModule)]
    if left:
        raise RuntimeError(f"export_static left switchable modules in the model: {left[:5]}")
    return static.train(model.training)
