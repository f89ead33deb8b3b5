"""ReID data: generated Market-1501-style datasets (drawn people; characters in fonts) and their
FastReID datasets, and CustomReID for your own images (a CSV file or a folder tree)."""
from .custom import CustomReID  # noqa: F401  (registers)
from .datasets import (  # noqa: F401  (registers)
    GlyphReIDTiny,
    HangulReID,
    SyntheticReID,
    SyntheticReIDEasy,
    SyntheticReIDHard,
    SyntheticReIDHardLarge,
    SyntheticReIDLarge,
    SyntheticReIDTiny,
    parse_name,
    synthetic_header,
)
from .errors import DatasetError, FontsMissingError  # noqa: F401
from .hangul import ensure_hangul_reid, generate_hangul_reid  # noqa: F401
from .hangul_params import GLYPH_REID_TINY, HANGUL_REID, GlyphParams  # noqa: F401
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
