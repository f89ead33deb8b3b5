"""One index kind over one gallery: build it (timed, its memory measured), then search it with
every width's queries at each operating point."""
from __future__ import annotations

import gc
import logging
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from ...deploy.index.faiss_ops import (
    add_in_batches,
    new_index,
    set_search_parameters,
    train_on_sample,
)
from .measure import Reference, compare, index_bytes, list_imbalance

logger = logging.getLogger(__name__)

__all__ = ["IndexSpec", "default_specs", "run_spec"]


class IndexSpec(NamedTuple):
    """An index kind and the operating points it is searched at."""

    name: str  # e.g. "IVF-Flat"
    factory: str  # faiss index_factory string
    param: Optional[str] = None  # "nprobe" | "efSearch" | None (nothing to set)
    values: Sequence[int] = ()
    note: str = ""  # e.g. "coarse quantiser trained on mixed widths"


def default_specs(nlist: int, pq_m: int, hnsw_m: int, nprobes: Sequence[int],
                  pq_nprobes: Sequence[int], ef_searches: Sequence[int]) -> Dict[str, IndexSpec]:
    """The benchmark's index kinds by key: flat, ivf, ivfpq, hnsw."""
    return {
        "flat": IndexSpec("Flat", "Flat"),
        "ivf": IndexSpec("IVF-Flat", f"IVF{nlist},Flat", "nprobe", tuple(nprobes)),
        "ivfpq": IndexSpec("IVF-PQ", f"IVF{nlist},PQ{pq_m}", "nprobe", tuple(pq_nprobes)),
        "hnsw": IndexSpec("HNSW", f"HNSW{hnsw_m}", "efSearch", tuple(ef_searches)),
    }


def _set(index, spec: IndexSpec, value: Optional[int]) -> None:
    if spec.param == "nprobe":
        set_search_parameters(index, nprobe=value)
    elif spec.param == "efSearch":
        set_search_parameters(index, ef_search=value)


def run_spec(spec: IndexSpec, gallery: np.ndarray, queries: Dict[float, np.ndarray],
             references: Dict[float, Reference], depth: int, *, train: Optional[np.ndarray] = None,
             sample_size: int = 65536, seed: int = 0, metric: str = "cosine") -> dict:
    """Build ``spec`` over ``gallery`` (N, D) unit rows (trained on a sample of ``train``,
    default the gallery) and measure every (operating point, width)."""
    index = new_index(spec.factory, gallery.shape[1], metric)
    start = time.perf_counter()
    used, train_s = train_on_sample(index, gallery if train is None else train, sample_size,
                                    seed)
    add_s = add_in_batches(index, gallery)
    build_s = time.perf_counter() - start
    memory, imbalance = index_bytes(index), list_imbalance(index)
    logger.info(f"{spec.name} ({spec.factory}) over {len(gallery)} rows: built in "
                f"{build_s:.1f} s, {memory / 2 ** 20:.0f} MiB")
    points: List[dict] = []
    for value in (spec.values or (None,)):
        _set(index, spec, value)
        for width in sorted(queries):
            row = compare(index, queries[width], references[width], depth, metric)
            points.append({spec.param or "setting": value, "width": width, **row})
            logger.info(f"  {spec.name} {spec.param or ''} {value or ''} width {width:g}: "
                        f"recall@10 {row['recall@10']:.3f}, {row['qps']:.0f} q/s "
                        f"({row['speedup']:.1f}x exact)")
    del index
    gc.collect()
    return {"name": spec.name, "factory": spec.factory, "param": spec.param,
            "note": spec.note, "gallery_size": int(len(gallery)),
            "build": {"train_rows": used, "train_s": round(train_s, 2), "add_s": round(add_s, 2),
                      "build_s": round(build_s, 2), "index_bytes": int(memory),
                      "vectors_bytes": int(gallery.nbytes), "list_imbalance": imbalance},
            "points": points}
