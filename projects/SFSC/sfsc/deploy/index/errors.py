"""Named errors of gallery indexes: inputs that cannot be indexed or searched as given."""
from __future__ import annotations

from ..errors import DeployError

__all__ = ["IndexInputError", "DimensionMismatchError", "MetricMismatchError"]


class IndexInputError(DeployError):
    """A feature file, index folder or option the index tools cannot use; the message says
    why and what to do instead."""


class DimensionMismatchError(IndexInputError):
    """Query (or shard) features whose dimension differs from the index's."""


class MetricMismatchError(IndexInputError):
    """Queries declared for another similarity than the one the index was built for."""
