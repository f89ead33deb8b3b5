"""Switchable layers: one set of conv / linear weights shared by every width, one BN per width.

A switchable network holds the weights of its widest (1.0x) form. At width index ``i`` each
conv / linear layer uses the *leading* ``out_channels[i]`` output and ``in_channels[i]`` input
channels of its weight (Slimmable Networks, Yu et al. 2018); a layer whose input is the RGB image
or whose output is the retrieval feature keeps that side fixed by listing the same count for
every width. BatchNorm is never sliced: each width owns a BN of its own size, because sliced
sub-networks see very different activation statistics.

The width is switched on the live model with :func:`set_width` or :func:`width_context`;
nothing is rebuilt. :meth:`SwitchableModule.to_static` turns a layer into the ordinary,
physically smaller layer of one width (used to export a sub-model).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "scale_channels", "width_key", "SwitchableModule", "SwitchableConv2d", "SwitchableLinear",
    "SwitchableBatchNorm2d", "SwitchableBatchNorm1d", "set_width", "get_width", "width_context",
    "switchable_widths", "GROUP_SLICINGS",
]

GROUP_SLICINGS = ("leading", "per_group")


def scale_channels(channels: int, width: float, divisor: int = 1) -> int:
    """Channels kept at crop ratio ``width``: round(channels*width) to a multiple of ``divisor``."""
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}")
    scaled = int(math.floor(channels * width / divisor + 0.5)) * divisor
    return max(divisor, min(channels, scaled))


def width_key(width: float) -> str:
    """Name of a width in module / state-dict keys: 0.25 -> '0_25', 1.0 -> '1_0'."""
    return f"{float(width):.4g}".replace(".", "_") if float(width) % 1 else f"{int(width)}_0"


class SwitchableModule:
    """Mixin for layers that follow the model's width. ``width_idx`` indexes ``widths``."""

    widths: tuple
    width_idx: int

    def _init_widths(self, widths: Sequence[float]) -> None:
        self.widths = tuple(float(w) for w in widths)
        self.width_idx = len(self.widths) - 1

    def to_static(self, width_idx: int) -> nn.Module:
        raise NotImplementedError


def _per_width(values: Union[int, Sequence[int]], n: int, what: str) -> List[int]:
    if isinstance(values, int):
        return [values] * n
    values = [int(v) for v in values]
    if len(values) != n:
        raise ValueError(f"{what}: {len(values)} channel counts for {n} widths")
    return values


class SwitchableConv2d(nn.Conv2d, SwitchableModule):
    """Conv2d whose active slice follows the width.

    Args:
        widths: the model's widths, ascending.
        in_channels / out_channels: one count per width (an int: fixed across widths).
        groups: an int (kept at every width; channel counts must stay divisible by it) or
            ``"depthwise"`` (groups = channels at every width).
        group_slicing: how a grouped conv (an int ``groups`` > 1) takes its narrow weight.
            ``"leading"``: the leading ``cout`` rows of the whole weight, so that a sub-width
            with fewer than ``cout_full / g`` outputs builds all its groups from the full
            net's group 0. ``"per_group"``: sub-net group j takes the leading ``cout / g``
            rows of the full net's group j. Both are the same slice for groups 1 and depthwise.
    """

    def __init__(self, widths: Sequence[float], in_channels: Union[int, Sequence[int]],
                 out_channels: Union[int, Sequence[int]], kernel_size, stride=1, padding=0,
                 dilation=1, groups: Union[int, str] = 1, bias: bool = False,
                 group_slicing: str = "leading"):
        if group_slicing not in GROUP_SLICINGS:
            raise ValueError(f"group_slicing must be one of {GROUP_SLICINGS}, "
                             f"got {group_slicing!r}")
        self.group_slicing = group_slicing
        n = len(widths)
        self.in_channels_list = _per_width(in_channels, n, "in_channels")
        self.out_channels_list = _per_width(out_channels, n, "out_channels")
        self.depthwise = groups == "depthwise"
        if self.depthwise:
            if self.in_channels_list != self.out_channels_list:
                raise ValueError("a depthwise conv needs in == out channels at every width")
            self.groups_list = list(self.in_channels_list)
        else:
            self.groups_list = [int(groups)] * n
        for w, cin, cout, g in zip(widths, self.in_channels_list, self.out_channels_list,
                                   self.groups_list):
            if cin % g or cout % g:
                raise ValueError(f"width {w}: {cin} -> {cout} channels not divisible by {g} groups")
        super().__init__(max(self.in_channels_list), max(self.out_channels_list), kernel_size,
                         stride=stride, padding=padding, dilation=dilation,
                         groups=self.groups_list[-1], bias=bias)
        self._init_widths(widths)

    def _active(self):
        i = self.width_idx
        cin, cout, g = self.in_channels_list[i], self.out_channels_list[i], self.groups_list[i]
        weight, bias = self.weight, self.bias
        if self.group_slicing == "per_group" and not self.depthwise and g > 1:
            # (g, rows per full group, ...) -> the leading cout / g rows of every group
            weight = weight.view(g, -1, *weight.shape[1:])[:, : cout // g].reshape(
                cout, *weight.shape[1:])
            bias = bias.view(g, -1)[:, : cout // g].reshape(cout) if bias is not None else None
        weight = weight[:cout, : cin // g]
        bias = bias[:cout] if bias is not None else None
        return weight, bias, g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, groups = self._active()
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def to_static(self, width_idx: int) -> nn.Conv2d:
        saved, self.width_idx = self.width_idx, width_idx
        weight, bias, groups = self._active()
        self.width_idx = saved
        conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], self.kernel_size, self.stride,
                         self.padding, self.dilation, groups, bias is not None)
        conv.weight.data.copy_(weight.detach())
        if bias is not None:
            conv.bias.data.copy_(bias.detach())
        return conv

    def extra_repr(self) -> str:
        return (f"in={self.in_channels_list}, out={self.out_channels_list}, "
                f"kernel={self.kernel_size}, stride={self.stride}, groups={self.groups_list}, "
                f"group_slicing={self.group_slicing}")


class SwitchableLinear(nn.Linear, SwitchableModule):
    """Linear layer whose active slice follows the width (see :class:`SwitchableConv2d`)."""

    def __init__(self, widths: Sequence[float], in_features: Union[int, Sequence[int]],
                 out_features: Union[int, Sequence[int]], bias: bool = True):
        n = len(widths)
        self.in_features_list = _per_width(in_features, n, "in_features")
        self.out_features_list = _per_width(out_features, n, "out_features")
        super().__init__(max(self.in_features_list), max(self.out_features_list), bias=bias)
        self._init_widths(widths)

    def _active(self):
        i = self.width_idx
        cin, cout = self.in_features_list[i], self.out_features_list[i]
        return self.weight[:cout, :cin], (self.bias[:cout] if self.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self._active()
        return F.linear(x, weight, bias)

    def to_static(self, width_idx: int) -> nn.Linear:
        saved, self.width_idx = self.width_idx, width_idx
        weight, bias = self._active()
        self.width_idx = saved
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias is not None)
        linear.weight.data.copy_(weight.detach())
        if bias is not None:
            linear.bias.data.copy_(bias.detach())
        return linear


class _SwitchableBatchNorm(nn.Module, SwitchableModule):
    _bn_class = nn.BatchNorm2d

    def __init__(self, widths: Sequence[float], num_features: Union[int, Sequence[int]],
                 norm: str = "BN", bias_freeze: bool = False, **bn_kwargs):
        super().__init__()
        self._init_widths(widths)
        counts = _per_width(num_features, len(self.widths), "num_features")
        if norm not in ("BN", "syncBN"):
            raise ValueError(f"switchable norm must be 'BN' or 'syncBN', got {norm!r}")
        bn_class = nn.SyncBatchNorm if norm == "syncBN" else self._bn_class
        self.bn = nn.ModuleDict()
        for w, c in zip(self.widths, counts):
            bn = bn_class(c, **bn_kwargs)
            if bias_freeze:  # FastReID's BNNeck keeps beta at zero
                bn.bias.requires_grad_(False)
            self.bn[width_key(w)] = bn
        self.num_features_list = counts

    def active_bn(self) -> nn.Module:
        return self.bn[width_key(self.widths[self.width_idx])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active_bn()(x)

    def to_static(self, width_idx: int) -> nn.Module:
        source = self.bn[width_key(self.widths[width_idx])]
        bn = self._bn_class(source.num_features, eps=source.eps, momentum=source.momentum,
                            affine=source.affine, track_running_stats=source.track_running_stats)
        bn.load_state_dict(source.state_dict())
        bn.train(source.training)
        return bn


class SwitchableBatchNorm2d(_SwitchableBatchNorm):
    """One BatchNorm2d per width (never sliced, never shared)."""

    _bn_class = nn.BatchNorm2d


class SwitchableBatchNorm1d(_SwitchableBatchNorm):
    """One BatchNorm1d per width (e.g. a per-width BNNeck)."""

    _bn_class = nn.BatchNorm1d


def switchable_widths(model: nn.Module) -> tuple:
    """The widths of a model built from switchable layers (ascending)."""
    for m in model.modules():
        if isinstance(m, SwitchableModule):
            return m.widths
    raise ValueError("the model has no switchable layers")


def _width_index(widths: tuple, width: float) -> int:
    for i, w in enumerate(widths):
        if math.isclose(w, float(width), abs_tol=1e-6):
            return i
    raise ValueError(f"width {width} is not one of this model's widths {list(widths)}")


def set_width(model: nn.Module, width: float) -> None:
    """Switch every switchable layer of ``model`` to ``width`` (one of its widths)."""
    idx: Optional[int] = None
    for m in model.modules():
        if isinstance(m, SwitchableModule):
            if idx is None:
                idx = _width_index(m.widths, width)
            m.width_idx = idx
    if idx is None:
        raise ValueError("the model has no switchable layers")


def get_width(model: nn.Module) -> float:
    """The width ``model`` currently runs at."""
    for m in model.modules():
        if isinstance(m, SwitchableModule):
            return m.widths[m.width_idx]
    raise ValueError("the model has no switchable layers")


@contextlib.contextmanager
def width_context(model: nn.Module, width: float) -> Iterator[nn.Module]:
    """Run ``model`` at ``width`` inside the block, then restore its previous width."""
    previous = get_width(model)
    set_width(model, width)
    try:
        yield model
    finally:
        set_width(model, previous)
