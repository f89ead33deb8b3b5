"""The benchmark's gallery and queries for one trained model: its test set's gallery at full
width, real distractors, made distractors up to the requested size; its test queries at every
width; and the sub-width features a mixed-width quantiser is trained on."""
from __future__ import annotations

import logging
from typing import Dict, NamedTuple

import numpy as np

from ...evaluation.matches import MatchIndex
from ...evaluation.model_set import load_trained_model
from ...evaluation.rank_sources import model_feature_sets
from ...evaluation.similarity import normalize
from .distractors import real_distractors
from .made_features import made_distractors

logger = logging.getLogger(__name__)

__all__ = ["BenchGallery", "bench_gallery"]


class BenchGallery(NamedTuple):
    feats: np.ndarray  # (N, D) float32 unit rows: test gallery, real, then made distractors
    pids: np.ndarray  # (N,)
    camids: np.ndarray  # (N,)
    queries: Dict[float, np.ndarray]  # width -> (Q, D) unit rows of the test queries
    q_pids: np.ndarray  # (Q,) the queries' identities (every width: the same images)
    q_camids: np.ndarray  # (Q,)
    matches: MatchIndex  # of the queries against the gallery
    sub_width: np.ndarray  # (S, D) unit rows of sub-model features of gallery images
    counts: Dict[str, int]  # test_gallery, real_distractors, made_distractors, queries
    model: dict  # output_dir, checkpoint, dataset, widths, metric, flip


def bench_gallery(model_dir: str, size: int, real: int, mixed_sample: int, cache_dir: str,
                  checkpoint: str = "model_final.pth", seed: int = 0) -> BenchGallery:
    """The gallery of ``size`` rows (at most ``real`` real distractors, the rest made) and the
    queries of the trained model in ``model_dir``."""
    cfg, model = load_trained_model(model_dir, checkpoint)
    if cfg.TEST.METRIC != "cosine":
        raise ValueError(f"{model_dir} is evaluated with TEST.METRIC {cfg.TEST.METRIC}; the "
                         "benchmark indexes cosine features")
    widths = sorted(float(w) for w in model.widths)
    if widths[-1] != 1.0:
        raise ValueError(f"{model_dir} holds widths {widths}: the gallery needs the full model")
    dataset = cfg.DATASETS.TESTS[0]
    queries, galleries, _ = model_feature_sets(model_dir, widths, dataset, checkpoint)
    test = galleries[1.0]
    real = max(0, min(real, size - len(test.feats)))
    distractors = real_distractors(cfg, model, f"{model_dir}/{checkpoint}", dataset, real,
                                   mixed_sample, widths, cache_dir) if real else None
    parts = [normalize(test.feats)]
    pids, camids = [test.pids], [test.camids]
    if distractors is not None:
        parts.append(normalize(distractors.feats[1.0]))
        pids.append(distractors.pids)
        camids.append(distractors.camids)
    made = size - sum(len(p) for p in parts)
    if made > 0:
        if distractors is None:
            raise ValueError("made distractors are mixed from real ones: allow some real ones")
        feats, made_pids, made_camids = made_distractors(parts[1], distractors.pids,
                                                         distractors.camids, made, seed)
        parts.append(feats)
        pids.append(made_pids)
        camids.append(made_camids)
    gallery = np.concatenate(parts)
    del parts
    g_pids, g_camids = np.concatenate(pids), np.concatenate(camids)
    q = queries[1.0]
    subs = [galleries[w].feats for w in widths if w != 1.0]
    if distractors is not None:
        subs += [f for w, f in distractors.feats.items() if w != 1.0]
    counts = {"test_gallery": len(test.feats),
              "real_distractors": 0 if distractors is None else len(distractors.pids),
              "made_distractors": max(made, 0), "queries": len(q.feats)}
    logger.info(f"Gallery of {len(gallery)} rows: {counts}")
    return BenchGallery(
        gallery, g_pids, g_camids, {w: normalize(queries[w].feats) for w in widths},
        q.pids, q.camids, MatchIndex.build(q.pids, q.camids, g_pids, g_camids),
        normalize(np.concatenate(subs)),
        counts, {"output_dir": model_dir, "checkpoint": checkpoint, "dataset": dataset,
                 "widths": widths, "metric": cfg.TEST.METRIC,
                 "flip": bool(cfg.TEST.FLIP.ENABLED)})
