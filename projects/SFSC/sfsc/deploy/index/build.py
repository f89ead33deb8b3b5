"""Building a gallery index: the whole gallery, a trained empty index, or one shard of it.

The recipe for a gallery too large for one machine: train one empty index on a sample
(``train_only``), copy it to every machine, and let machine ``i`` of ``n`` add its contiguous
range of the gallery's rows (``shard``); the shards are merged, or searched one by one and
their top-k lists merged (:mod:`.shards`). Each shard records the checksum of the trained index
it started from, so shards of different trainings are refused, not mixed.
"""
from __future__ import annotations

import datetime
import logging
from typing import NamedTuple, Optional, Tuple

from .devices import to_cpu, to_device
from .errors import DimensionMismatchError, IndexInputError, MetricMismatchError
from .faiss_import import import_faiss
from .faiss_ops import add_in_batches, new_index, prepare, train_on_sample
from .gallery import FeatureSet
from .store import IndexFolder, save_index_folder, trained_checksum

logger = logging.getLogger(__name__)

__all__ = ["IndexBuild", "ShardSpec", "build_index", "index_metric", "parse_shard",
           "shard_rows", "write_index_folder"]


class ShardSpec(NamedTuple):
    index: int  # 0-based
    count: int


class IndexBuild(NamedTuple):
    """A built CPU index holding rows [start, stop) of the gallery, and its record."""

    index: object
    meta: dict
    start: int
    stop: int


def parse_shard(text: str) -> ShardSpec:
    """``"i/n"`` (0 <= i < n) as a ShardSpec."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise IndexInputError(f"--shard takes i/n, shard i (from 0) of n, e.g. 0/4; got "
                              f"{text!r}.") from None
    if not 0 <= i < n:
        raise IndexInputError(f"--shard {text}: i must lie in [0, n), shards are numbered "
                              f"0 to {max(n - 1, 0)}.")
    return ShardSpec(i, n)


def shard_rows(total: int, shard: Optional[ShardSpec]) -> Tuple[int, int]:
    """Rows [start, stop) of shard ``shard`` among ``total`` rows: contiguous, sizes within 1."""
    if shard is None:
        return 0, total
    return total * shard.index // shard.count, total * (shard.index + 1) // shard.count


def _from_trained(trained: IndexFolder, factory: str, metric: str, dim: int):
    meta = trained.meta
    if trained.index.ntotal:
        raise IndexInputError(f"--trained {trained.path} already holds {trained.index.ntotal} "
                              "vectors; pass the empty index that --train-only writes.")
    if factory and factory != meta["factory"]:
        raise IndexInputError(f"--index-factory {factory!r} differs from the trained index's "
                              f"{meta['factory']!r}; drop it (the trained index decides).")
    if metric != meta["metric"]:
        raise MetricMismatchError(f"the gallery is indexed for {metric} but {trained.path} was "
                                  f"trained for {meta['metric']}; use --metric {meta['metric']}.")
    if dim != meta["dim"]:
        raise DimensionMismatchError(f"the gallery's features are {dim}-d but {trained.path} "
                                     f"was trained on {meta['dim']}-d features: they come from "
                                     "another model.")
    faiss = import_faiss()
    return faiss.clone_index(trained.index), meta["factory"], dict(meta["trained"],
                                                                    folder=trained.path)


def index_metric(requested: Optional[str], features: FeatureSet) -> str:
    """The metric to index ``features`` with: the one their file declares, else ``requested``,
    else cosine; MetricMismatchError when a requested one contradicts the file."""
    declared = features.metric
    if requested and declared and requested != declared:
        raise MetricMismatchError(f"--metric {requested} but {features.source} declares its "
                                  f"features for {declared} similarity; drop --metric, or pass "
                                  f"--metric {declared}.")
    return declared or requested or "cosine"


def build_index(features: FeatureSet, factory: str = "", metric: str = "cosine", *,
                trained: Optional[IndexFolder] = None, shard: Optional[ShardSpec] = None,
                train_only: bool = False, sample_size: int = 100_000, seed: int = 0,
                batch_size: int = 65536, device: str = "cpu") -> IndexBuild:
    """Index ``features`` (all rows, or ``shard``'s) with ``factory`` or the ``trained`` empty
    index; ``train_only``: train on a sample and add nothing."""
    faiss = import_faiss()
    if train_only and (shard is not None or trained is not None):
        raise IndexInputError("--train-only trains the index every shard starts from; it takes "
                              "neither --shard nor --trained.")
    dim = features.feats.shape[1]
    if trained is not None:
        index, factory, train_info = _from_trained(trained, factory, metric, dim)
    else:
        if not factory:
            raise IndexInputError("pass --index-factory (e.g. 'IVF1024,Flat'), or --trained "
                                  "with an index trained by --train-only.")
        index = new_index(factory, dim, metric)
        if shard is not None and not index.is_trained:
            raise IndexInputError(f"--shard of a {factory!r} index needs --trained: every shard "
                                  "must start from one trained index (IVF centroids, PQ "
                                  "codebooks). Train it once with --train-only, then build "
                                  "each shard with --trained FOLDER --shard i/n.")
        train_info = None
    feats = prepare(features.feats, metric, f"features of {features.source}")
    start, stop = (0, 0) if train_only else shard_rows(len(feats), shard)
    index = to_device(index, device)
    if train_info is None:
        used, seconds = train_on_sample(index, feats, sample_size, seed)
        train_info = {"sample": used, "seed": seed, "seconds": round(seconds, 3),
                      "folder": None}
        train_info["checksum"] = trained_checksum(to_cpu(index))
    if not train_only:
        logger.info(f"Adding rows {start}-{stop} of {len(feats)} to a {factory} index "
                    f"({metric}, {dim}-d, {device}) ...")
    add_seconds = add_in_batches(index, feats[start:stop], batch_size)
    index = to_cpu(index)
    meta = {
        "factory": factory, "metric": metric, "dim": dim, "ntotal": int(index.ntotal),
        "normalized": metric == "cosine", "model": features.model, "width": features.width,
        "gallery": {"source": features.source, "size": len(feats)},
        "rows": [start, stop],
        "shard": None if shard is None else {"index": shard.index, "count": shard.count},
        "train_only": train_only, "trained": train_info,
        "build": {"add_seconds": round(add_seconds, 3), "device": device,
                  "faiss": faiss.__version__,
                  "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds")},
    }
    return IndexBuild(index, meta, start, stop)


def write_index_folder(folder: str, build: IndexBuild, features: FeatureSet) -> str:
    """Save ``build`` with the ids and paths of its rows of ``features``; the folder's path."""
    rows = slice(build.start, build.stop)
    return save_index_folder(folder, build.index, build.meta, features.pids[rows],
                             features.camids[rows], list(features.paths[rows]))

