"""Per-width channel plans of the switchable backbones, validated when the backbone is built.

A backbone describes the channel counts of ONE width with a ``plan(width)`` function that calls
:func:`scaled` and :func:`require`; :func:`plan_widths` runs it for every width of the model and
turns the first layer that cannot honour a width into a ``ValueError`` naming the width, the layer
and the fix (including the smallest width, in steps of 0.01, the backbone does accept).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, TypeVar

from ...config_checks import ConfigError
from ..switchable import scale_channels

__all__ = ["LayerWidthError", "scaled", "require", "plan_widths", "make_divisible", "multiplier"]

T = TypeVar("T")


class LayerWidthError(ValueError):
    """A layer cannot be built at some width; raised inside a ``plan(width)`` function."""

    def __init__(self, layer: str, problem: str, fix: str):
        super().__init__(f"layer {layer}: {problem}")
        self.layer, self.problem, self.fix = layer, problem, fix


def require(ok: bool, layer: str, problem: str, fix: str) -> None:
    """Raise :class:`LayerWidthError` for ``layer`` unless ``ok``."""
    if not ok:
        raise LayerWidthError(layer, problem, fix)


def scaled(layer: str, channels: int, width: float, divisor: int = 1) -> int:
    """Channels of ``layer`` at crop ratio ``width``: round(channels*width) to a divisor multiple.

    ``channels`` is the layer's count at 1.0x; it must itself be a multiple of ``divisor`` so that
    the full model obeys the same rule as its sub-models. Never returns less than ``divisor``.
    """
    require(0 < width <= 1, layer, f"width {width} is outside (0, 1]",
            "list only crop ratios in (0, 1] in SFSC.WIDTHS and SFSC.TRAIN_WIDTH")
    require(channels % divisor == 0, layer,
            f"its {channels} channels at 1.0x are not a multiple of {divisor}",
            "choose a base multiplier (MODEL.BACKBONE.DEPTH) whose channels are multiples "
            f"of {divisor}")
    return scale_channels(channels, width, divisor)


def _smallest_width(plan: Callable[[float], object]) -> Optional[float]:
    for step in range(1, 101):
        try:
            plan(step / 100)
        except LayerWidthError:
            continue
        return step / 100
    return None


def plan_widths(backbone: str, widths: Sequence[float], plan: Callable[[float], T]) -> List[T]:
    """``plan(w)`` for every width in order; a width that fails raises a descriptive ValueError."""
    if not widths:
        raise ConfigError(f"{backbone}: no widths given (SFSC.WIDTHS / SFSC.TRAIN_WIDTH)")
    # ascending: a switchable layer stores the weights of its last (widest) width
    if list(widths) != sorted(widths) or len(set(widths)) != len(widths):
        raise ConfigError(f"{backbone}: widths must be ascending and distinct, got {list(widths)}")
    plans = []
    for w in widths:
        try:
            plans.append(plan(float(w)))
        except LayerWidthError as err:
            hint = ""
            if 0 < w <= 1:  # a width that is too small: say how small it may be
                smallest = _smallest_width(plan)
                hint = (f"; the smallest width {backbone} accepts is {smallest}" if smallest
                        else f"; {backbone} accepts no width with this configuration")
            raise ConfigError(f"{backbone} cannot run at width {w}: layer {err.layer}: "
                             f"{err.problem}. Fix: {err.fix}{hint}.") from None
    return plans


def make_divisible(value: float, divisor: int) -> int:
    """Nearest multiple of ``divisor`` to ``value``, never below divisor nor 10% below value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def multiplier(backbone: str, depth: str, choices: Sequence[float]) -> float:
    """Base width multiplier from MODEL.BACKBONE.DEPTH ("1.0x"); raises unless one of choices."""
    allowed = ", ".join(f'"{c}x"' for c in choices)
    try:
        value = float(str(depth).rstrip("x"))
    except ValueError:
        value = None
    if value not in [float(c) for c in choices]:
        raise ConfigError(f"MODEL.BACKBONE.DEPTH {depth!r} is not a {backbone} size; "
                         f"set it to one of {allowed}")
    return value
