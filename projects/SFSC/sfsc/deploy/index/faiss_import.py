"""faiss, imported where an index needs it, with an error that says how to install it.

faiss is an extra, not a dependency: ``pip install -e .[cpu]`` brings faiss-cpu and
``pip install -e .[gpu]`` faiss-gpu-cu12; both provide the module ``faiss``, so one environment
holds one of them. It is imported inside functions: some faiss wheels clash with torch's OpenMP
when loaded first, and only the index tools need it.
"""
from __future__ import annotations

from .errors import IndexInputError

__all__ = ["import_faiss"]


def import_faiss():
    """The ``faiss`` module; IndexInputError naming the install command when it is missing."""
    try:
        import faiss
    except ImportError as exc:
        raise IndexInputError(
            f"the gallery index needs faiss, which cannot be imported here ({exc}). From the "
            "repository root: .venv/bin/pip install -e \".[cpu]\" (faiss-cpu), or on a CUDA 12 "
            "machine .venv/bin/pip install -e \".[gpu]\" (faiss-gpu-cu12).") from None
    return faiss
