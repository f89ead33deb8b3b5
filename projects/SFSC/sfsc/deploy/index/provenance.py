"""Which network made a set of features, and whether queries may be searched in an index.

Sub-models of one switchable checkpoint are trained to share one feature space: a 0.25×
query is meant to be searched among the full model's gallery features. Features of networks
trained apart are comparable only if they were trained to be (one-to-one compatible training,
BCT), which a feature file cannot say; so a search of another network's index, or one whose
provenance is unknown, goes on with a warning.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["network_of", "query_source_warning"]


def network_of(model: Optional[dict]) -> Optional[str]:
    """The switchable checkpoint a feature file's ``model`` entry says made it (its checksum,
    else its path), for a switchable model at any width or a sub-model exported from one."""
    if not isinstance(model, dict):
        return None
    source = model if model.get("kind") == "switchable" else model.get("source")
    if not isinstance(source, dict):
        return None
    return source.get("checkpoint_sha256") or source.get("checkpoint") or None


def query_source_warning(index_model: Optional[dict], query_model: Optional[dict],
                         queries: str) -> Optional[str]:
    """Why searching ``queries`` in the index may not mean what it should, or None when both
    come from one switchable checkpoint (any widths)."""
    index_net, query_net = network_of(index_model), network_of(query_model)
    if index_net is not None and index_net == query_net:
        return None
    if index_net is None or query_net is None:
        unknown = " and ".join(what for what, net in (("the index's gallery", index_net),
                                                      (queries, query_net)) if net is None)
        return (f"cannot tell which network made {unknown}, so cannot check that the queries "
                "come from the index's switchable model or a sub-model of it; the ranking means "
                "something only if they do, or if the two networks were trained to be "
                "compatible.")
    return (f"{queries} come from checkpoint {query_net}, the index from {index_net}: they are "
            "not sub-models of one switchable network, so their features share a space only "
            "if the two were trained to be compatible (e.g. BCT); otherwise the ranking is "
            "meaningless. Search with a sub-model of the index's checkpoint.")
