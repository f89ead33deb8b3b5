"""Errors for data the user has to fix: raised with a message that names the problem and fix."""
from __future__ import annotations

__all__ = ["DatasetError", "FontsMissingError"]


class DatasetError(RuntimeError):
    """A dataset is missing, misplaced or malformed."""


class FontsMissingError(DatasetError):
    """A font-rendered dataset needs font files this machine lacks (the message says how to
    install them)."""
