"""Errors for data the user has to fix: raised with a message that names the problem and fix."""
from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(RuntimeError):
    """A dataset is missing, misplaced or malformed."""
