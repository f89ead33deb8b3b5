"""Synthetic ReID data: a deterministic Market-1501-style generator and its FastReID datasets."""
from .datasets import SyntheticReID, SyntheticReIDTiny, parse_name  # noqa: F401  (registers)
from .params import SYNTHETIC_REID, SYNTHETIC_REID_TINY, GenerationParams  # noqa: F401
from .synthetic import ensure_synthetic_reid, generate_synthetic_reid  # noqa: F401
