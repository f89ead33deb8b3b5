from . import backbones, heads, meta_arch  # noqa: F401  (registration)
from .switchable import get_width, set_width, width_context  # noqa: F401
