"""The gallery-index benchmark as one call: gallery, exact references, every index kind, the
mixed-width remedy, the contrast model, and the findings (sub-model loss, the target)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np

from ...evaluation.matches import MatchIndex
from .analysis import findings
from .gallery import BenchGallery, bench_gallery
from .measure import Reference, index_bytes, make_reference
from .sweeps import IndexSpec, default_specs, run_spec

logger = logging.getLogger(__name__)

__all__ = ["IndexBenchSettings", "run_index_benchmark"]


@dataclass
class IndexBenchSettings:
    """What the benchmark builds and measures (sizes in gallery rows)."""

    model_dir: str
    contrast_dir: str = ""  # a second trained model (e.g. BCT-S), on its own gallery
    gallery_size: int = 1_000_000
    real_distractors: int = 15_000  # extracted from rendered images; the rest are made
    mixed_sample: int = 2_000  # distractor images also extracted at every sub-model width
    hnsw_gallery_size: int = 100_000  # HNSW indexes the first rows only (its build is slow)
    contrast_gallery_size: int = 200_000
    contrast_real_distractors: int = 4_000
    nlist: int = 1024
    pq_m: int = 64
    hnsw_m: int = 32
    nprobes: Tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    pq_nprobes: Tuple[int, ...] = (8, 32, 128)
    ef_searches: Tuple[int, ...] = (16, 64, 256)
    indexes: Tuple[str, ...] = ("flat", "ivf", "ivfpq", "hnsw")
    contrast_indexes: Tuple[str, ...] = ("flat", "ivf")
    depth: int = 100  # list length the metrics are computed on
    train_sample: int = 65536
    threads: int = 1
    seed: int = 0
    cache_dir: str = "logs/gallery_index_cache"
    checkpoint: str = "model_final.pth"


def _references(feats: np.ndarray, bench: BenchGallery, matches: MatchIndex, depth: int
                ) -> Tuple[dict, Dict[float, Reference]]:
    """The Flat index's entry (exact search: recall 1 by definition) and its lists per width."""
    import faiss

    start = time.perf_counter()
    flat = faiss.IndexFlatIP(feats.shape[1])
    flat.add(feats)
    build_s = time.perf_counter() - start
    memory = index_bytes(flat)
    references, points = {}, []
    for width, queries in sorted(bench.queries.items()):
        ref = make_reference(flat, queries, matches, depth)
        references[width] = ref
        qps = len(queries) / ref.seconds
        points.append({"setting": None, "width": width, "recall@1": 1.0, "recall@10": 1.0,
                       "recall@100": 1.0, "mAP": ref.metrics["mAP"], "R1": ref.metrics["R1"],
                       "mAP_exact": ref.metrics["mAP"], "R1_exact": ref.metrics["R1"],
                       "qps": qps, "qps_exact": qps, "speedup": 1.0})
        logger.info(f"  exact search, width {width:g}: {qps:.1f} q/s, mAP@{depth} "
                    f"{ref.metrics['mAP']:.2f}, R1 {ref.metrics['R1']:.2f}")
    del flat
    entry = {"name": "Flat", "factory": "Flat", "param": None, "note": "exact search",
             "gallery_size": int(len(feats)),
             "build": {"train_rows": 0, "train_s": 0.0, "add_s": round(build_s, 2),
                       "build_s": round(build_s, 2), "index_bytes": int(memory),
                       "vectors_bytes": int(feats.nbytes), "list_imbalance": None},
             "points": points}
    return entry, references


def _measure_model(settings: IndexBenchSettings, model_dir: str, size: int, real: int,
                   kinds: Tuple[str, ...], remedy: bool) -> dict:
    bench = bench_gallery(model_dir, size, real, settings.mixed_sample, settings.cache_dir,
                          settings.checkpoint, settings.seed)
    specs = default_specs(settings.nlist, settings.pq_m, settings.hnsw_m, settings.nprobes,
                          settings.pq_nprobes, settings.ef_searches)
    logger.info(f"Exact search over {len(bench.feats)} rows ...")
    flat, references = _references(bench.feats, bench, bench.matches, settings.depth)
    entries: List[dict] = [flat] if "flat" in kinds else []
    common = dict(sample_size=settings.train_sample, seed=settings.seed)
    for kind in kinds:
        if kind in ("flat", "hnsw"):
            continue
        entries.append(run_spec(specs[kind], bench.feats, bench.queries, references,
                                settings.depth, **common))
    if remedy and "ivf" in kinds:
        mixed = _mixed_training(bench, settings.train_sample, settings.seed)
        spec = specs["ivf"]._replace(
            name="IVF-Flat, mixed-width quantiser",
            note=f"coarse quantiser trained on {len(mixed)} rows: every sub-model feature of "
                 f"the test gallery and the distractors extracted at every width "
                 f"({len(bench.sub_width)}), the rest full-width gallery rows")
        entries.append(run_spec(spec, bench.feats, bench.queries, references, settings.depth,
                                train=mixed, **common))
    if "hnsw" in kinds:
        n = min(settings.hnsw_gallery_size, len(bench.feats))
        entries.append(_hnsw(specs["hnsw"], bench, n, settings, common))
    return {"model": bench.model, "gallery": dict(bench.counts, size=len(bench.feats)),
            "indexes": entries}


def _mixed_training(bench: BenchGallery, sample: int, seed: int) -> np.ndarray:
    """Every sub-width row, and full-width gallery rows up to ``sample`` rows in all."""
    rng = np.random.default_rng(seed)
    room = max(sample - len(bench.sub_width), 0)
    rows = np.sort(rng.choice(len(bench.feats), min(room, len(bench.feats)), replace=False))
    return np.concatenate([bench.feats[rows], bench.sub_width])


def _hnsw(spec: IndexSpec, bench: BenchGallery, n: int, settings: IndexBenchSettings,
          common: dict) -> dict:
    """HNSW over the first ``n`` rows (the test gallery comes first), against exact search
    over those same rows."""
    feats = bench.feats[:n]
    matches = bench.matches
    if n < len(bench.feats):
        logger.info(f"HNSW over the first {n} rows: exact search over them first ...")
        matches = MatchIndex.build(bench.q_pids, bench.q_camids, bench.pids[:n],
                                   bench.camids[:n])
    _, references = _references(feats, bench, matches, settings.depth)
    entry = run_spec(spec, feats, bench.queries, references, settings.depth, **common)
    if n < len(bench.feats):
        entry["note"] = (f"over the first {n} gallery rows (building it over all of them does "
                         "not fit the time); recall and speed-up against exact search over "
                         "those rows")
    return entry


def run_index_benchmark(settings: IndexBenchSettings) -> dict:
    """Every measurement as one JSON-ready dict (see :mod:`.report` for its layout)."""
    import faiss
    import torch

    faiss.omp_set_num_threads(settings.threads)
    torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    results = {"settings": asdict(settings), "faiss": faiss.__version__}
    logger.info(f"Model {settings.model_dir}: gallery of {settings.gallery_size} rows")
    results["main"] = _measure_model(settings, settings.model_dir, settings.gallery_size,
                                     settings.real_distractors, settings.indexes, remedy=True)
    if settings.contrast_dir:
        logger.info(f"Contrast model {settings.contrast_dir}: gallery of "
                    f"{settings.contrast_gallery_size} rows")
        results["contrast"] = _measure_model(
            settings, settings.contrast_dir, settings.contrast_gallery_size,
            settings.contrast_real_distractors, settings.contrast_indexes, remedy=False)
    results["findings"] = findings(results)
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    return results
