from . import backbones  # noqa: F401
from .switchable import get_width, set_width, width_context  # noqa: F401
