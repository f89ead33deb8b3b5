"""The one error type of the deployment tools: an input they cannot use as given."""
from __future__ import annotations

__all__ = ["DeployError"]


class DeployError(ValueError):
    """A model, width, file or folder the deployment tools cannot use; the message says why
    and what to do instead."""
