"""SFSC: switchable, self-compatible representation learning as a FastReID project.

Importing the package patches FastReID for modern Python / torch / numpy (see
``sfsc.fastreid.compat``) and registers SFSC's backbones, heads, meta-architecture and datasets.
"""
from .fastreid import compat

compat.apply_all()

from . import data, modeling  # noqa: E402,F401  (registers datasets, backbones, heads, ...)
from .config import add_sfsc_config, model_widths  # noqa: E402

__version__ = "0.1.0"
__all__ = ["add_sfsc_config", "model_widths", "__version__"]
