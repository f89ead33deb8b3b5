"""ReID data: a deterministic synthetic Market-1501-style generator, its FastReID datasets and
CustomReID for your own images (a CSV file or a folder tree)."""
from .custom import CustomReID  # noqa: F401  (registers)
from .datasets import (  # noqa: F401  (registers)
    SyntheticReID,
    SyntheticReIDEasy,
    SyntheticReIDHard,
    SyntheticReIDHardLarge,
    SyntheticReIDLarge,
    SyntheticReIDTiny,
    parse_name,
    synthetic_header,
)
from .errors import DatasetError  # noqa: F401
from .params import (  # noqa: F401
    SYNTHETIC_REID,
    SYNTHETIC_REID_EASY,
    SYNTHETIC_REID_HARD,
    SYNTHETIC_REID_HARD_LARGE,
    SYNTHETIC_REID_LARGE,
    SYNTHETIC_REID_TINY,
    GenerationParams,
)
from .synthetic import ensure_synthetic_reid, generate_synthetic_reid  # noqa: F401
