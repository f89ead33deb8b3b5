"""Many-to-many compatibility: FastReID's metrics for every (query model, gallery model) pair.

``M[i][j]`` is the retrieval accuracy with query features from model ``i`` and gallery
features from model ``j`` (rows = query, columns = gallery). Each model's features are
validated and normalised once; the positive / junk bookkeeping, the per-block index arrays
and the score buffers are built once and shared by every cell.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .matches import MatchIndex
from .ranking import ScoreHook, rank_queries, summarize, working_memory_bytes
from .similarity import make_scorer

logger = logging.getLogger(__name__)

__all__ = ["METRIC_NAMES", "CompatibilityResult", "CompatibilityEvaluator",
           "evaluate_compatibility", "format_label"]

METRIC_NAMES = ("mAP", "R1", "R5", "R10", "mINP")
_TITLES = {"mAP": "mAP", "R1": "Rank-1", "R5": "Rank-5", "R10": "Rank-10", "mINP": "mINP"}
#: Above this many query x gallery pairs per cell, every finished cell is logged at INFO.
_LOG_CELLS_ABOVE = 10_000_000


def _is_number(label: Any) -> bool:
    return isinstance(label, (int, float, np.integer, np.floating)) and not isinstance(label, bool)


def format_label(label: Any) -> str:
    """A model label as text: widths as 0.25, 0.5, 1.0; anything else with ``str``."""
    if _is_number(label):
        value = float(label)
        return f"{value:.1f}" if value.is_integer() else f"{value:g}"
    return str(label)


@dataclass
class CompatibilityResult:
    """The matrices (n_query_models, n_gallery_models) of every metric, in percent."""

    query_labels: List[Any]
    gallery_labels: List[Any]
    metrics: Dict[str, np.ndarray]  # METRIC_NAMES -> (n_q, n_g) float64, percent
    num_query: int
    num_gallery: int
    num_valid: int  # queries with a positive: the ones every cell averages over
    metric: str = "cosine"
    seconds: float = 0.0

    @property
    def num_skipped(self) -> int:
        return self.num_query - self.num_valid

    def cell(self, query_label: Any, gallery_label: Any) -> Dict[str, float]:
        """All metrics (%) of one (query model, gallery model) pair."""
        i, j = self.query_labels.index(query_label), self.gallery_labels.index(gallery_label)
        return {name: float(m[i, j]) for name, m in self.metrics.items()}

    def to_json(self) -> Dict[str, Any]:
        """``{"widths", "labels", "mAP", "R1", "R5", "R10", "mINP"}``; matrices in percent,
        rows = query model. ``widths`` holds the labels as floats, or null when they are not
        numbers; ``gallery_widths`` / ``gallery_labels`` are added when the columns differ."""
        def widths(labels: Sequence[Any]) -> Optional[List[float]]:
            return [float(x) for x in labels] if all(map(_is_number, labels)) else None

        out: Dict[str, Any] = {"widths": widths(self.query_labels),
                               "labels": [format_label(x) for x in self.query_labels]}
        if list(self.gallery_labels) != list(self.query_labels):
            out["gallery_widths"] = widths(self.gallery_labels)
            out["gallery_labels"] = [format_label(x) for x in self.gallery_labels]
        out.update({name: self.metrics[name].tolist() for name in METRIC_NAMES})
        return out

    def table(self, name: str) -> str:
        """One metric as a pipe table: rows = query model, columns = gallery model."""
        from tabulate import tabulate

        rows = [[format_label(q), *self.metrics[name][i]]
                for i, q in enumerate(self.query_labels)]
        headers = ["query \\ gallery", *[format_label(g) for g in self.gallery_labels]]
        # Labels stay as written (no "0.50"); values are right-aligned with 2 decimals.
        body = tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".2f",
                        disable_numparse=[0], colalign=["left"] + ["right"] * (len(headers) - 1))
        return f"{_TITLES[name]} (%) — rows: query model, columns: gallery model\n{body}"

    def tables(self) -> str:
        """Every metric's table, separated by blank lines."""
        return "\n\n".join(self.table(name) for name in METRIC_NAMES)

    def _largest(self) -> Any:
        common = [x for x in self.query_labels if x in self.gallery_labels]
        if not common:
            raise ValueError("no model is both a query and a gallery model: no diagonal")
        return max(common, key=float) if all(map(_is_number, common)) else common[-1]

    def summary(self, label: Any = None) -> Dict[str, float]:
        """FastReID's result row for one model against itself (default: the largest width):
        Rank-1, Rank-5, Rank-10, mAP, mINP and metric = (mAP + Rank-1) / 2, in percent."""
        cell = self.cell(*(2 * [self._largest() if label is None else label]))
        out = OrderedDict((_TITLES[k], cell[k]) for k in ("R1", "R5", "R10", "mAP", "mINP"))
        out["metric"] = (cell["mAP"] + cell["R1"]) / 2
        return out

    def fastreid_results(self) -> Dict[str, float]:
        """``summary()`` followed by every cell as ``<metric>/q<label>_g<label>``."""
        out = self.summary()
        for name in METRIC_NAMES:
            for i, q in enumerate(self.query_labels):
                for j, g in enumerate(self.gallery_labels):
                    key = f"{name}/q{format_label(q)}_g{format_label(g)}"
                    out[key] = float(self.metrics[name][i, j])
        return out

    def write(self, output_dir: str, filename: str = "compatibility.json") -> str:
        """Write ``to_json()`` to ``output_dir/filename``; returns the path."""
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, filename)
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")
        return path


class CompatibilityEvaluator:
    """Evaluates every (query model, gallery model) pair on one query / gallery split.

    ``q_pids``/``q_camids`` (Q,) and ``g_pids``/``g_camids`` (G,) are shared by all models.
    ``chunk_size`` queries are scored at a time (memory ~ chunk_size x G floats, never Q x G);
    ``backend`` is auto | faiss | torch (see ``similarity``); ``score_hook`` may post-process
    each score block (e.g. re-ranking) and receives the cell's labels.
    """

    def __init__(self, q_pids, q_camids, g_pids, g_camids, *, metric: str = "cosine",
                 chunk_size: int = 1024, backend: str = "auto", device: Optional[str] = None,
                 score_hook: Optional[ScoreHook] = None):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.matches = MatchIndex.build(q_pids, q_camids, g_pids, g_camids)
        self.scorer = make_scorer(backend, metric, device)
        self.metric, self.chunk_size, self.score_hook = metric, int(chunk_size), score_hook

    @classmethod
    def from_config(cls, cfg, q_pids, q_camids, g_pids, g_camids,
                    **kwargs) -> CompatibilityEvaluator:
        """Evaluator set by TEST.METRIC, TEST.COMPAT.CHUNK_SIZE and TEST.COMPAT.BACKEND."""
        options = dict(metric=cfg.TEST.METRIC, chunk_size=cfg.TEST.COMPAT.CHUNK_SIZE,
                       backend=cfg.TEST.COMPAT.BACKEND)
        options.update(kwargs)
        return cls(q_pids, q_camids, g_pids, g_camids, **options)

    def _prepare(self, feats: Mapping[Any, Any], role: str,
                 dims: Dict[str, int]) -> Dict[Any, Any]:
        count = self.matches.num_query if role == "query" else self.matches.num_gallery
        prepared = {}
        for label, x in feats.items():
            name = f"{role} features of model {format_label(label)}"
            prepared[label] = self.scorer.prepare(x, role, name)
            if prepared[label].shape[0] != count:
                raise ValueError(f"{name} have {prepared[label].shape[0]} rows but there are "
                                 f"{count} {role} ids")
            dims[f"{role} {format_label(label)}"] = int(x.shape[1])
        return prepared

    def evaluate(self, query_feats: Mapping[Any, Any],
                 gallery_feats: Optional[Mapping[Any, Any]] = None) -> CompatibilityResult:
        """The full matrix for ``{label: (Q, D) query features}`` x ``{label: (G, D) gallery
        features}``, or for ``{label: (query (Q, D), gallery (G, D))}`` when
        ``gallery_feats`` is None. Rows and columns follow the mappings' order."""
        if gallery_feats is None:
            query_feats, gallery_feats = ({k: v[0] for k, v in query_feats.items()},
                                          {k: v[1] for k, v in query_feats.items()})
        if not query_feats or not gallery_feats:
            raise ValueError("no models to evaluate")
        matches = self.matches
        if matches.num_valid == 0:
            raise ValueError("no query has a valid gallery match (a gallery item with its "
                             "identity under another camera): nothing to evaluate")
        dims: Dict[str, int] = {}
        queries = self._prepare(query_feats, "query", dims)
        galleries = self._prepare(gallery_feats, "gallery", dims)
        if len(set(dims.values())) > 1:
            raise ValueError("feature dimensions differ between models: " +
                             ", ".join(f"{k}: {v}" for k, v in dims.items()))
        start = time.perf_counter()
        cells = [(q, g) for q in queries for g in galleries]
        self._log_plan(queries, galleries, len(cells), next(iter(dims.values())))
        results = {name: np.zeros((len(queries), len(galleries))) for name in METRIC_NAMES}
        rows = min(self.chunk_size, matches.num_query)
        buffers = [self.scorer.empty(rows, matches.num_gallery)
                   for _ in range(2 if self.scorer.overlap else 1)]
        loud = matches.num_query * matches.num_gallery >= _LOG_CELLS_ABOVE
        for n, (q, g) in enumerate(cells, 1):
            ranks = rank_queries(self.scorer, queries[q], galleries[g], matches,
                                 self.chunk_size, self.score_hook, (q, g), buffers)
            values = summarize(ranks, matches).as_dict()
            i, j = list(queries).index(q), list(galleries).index(g)
            for name in METRIC_NAMES:
                results[name][i, j] = values[name]
            elapsed = time.perf_counter() - start
            logger.log(logging.INFO if loud else logging.DEBUG,
                       "cell %d/%d: query %s -> gallery %s: mAP %.2f, Rank-1 %.2f (%.1f s, "
                       "about %.0f s left)", n, len(cells), format_label(q), format_label(g),
                       values["mAP"], values["R1"], elapsed, elapsed / n * (len(cells) - n))
        return CompatibilityResult(list(queries), list(galleries), results, matches.num_query,
                                   matches.num_gallery, matches.num_valid, self.metric,
                                   time.perf_counter() - start)

    def _log_plan(self, queries: Dict[Any, Any], galleries: Dict[Any, Any], cells: int,
                  dim: int) -> None:
        matches, scorer = self.matches, self.scorer
        feature_bytes = sum(int(math.prod(x.shape)) * 4 for d in (queries, galleries)
                            for x in d.values())
        scratch = working_memory_bytes(min(self.chunk_size, matches.num_query),
                                       matches.num_gallery, scorer.overlap)
        logger.info("Compatibility matrix: %d query x %d gallery models = %d cells; %d queries x "
                    "%d gallery items (dim %d, %s); backend %s on %s, %d queries per block; "
                    "memory about %.0f MiB (features %.0f + scratch %.0f)",
                    len(queries), len(galleries), cells, matches.num_query, matches.num_gallery,
                    dim, self.metric, scorer.name, scorer.device,
                    min(self.chunk_size, matches.num_query),
                    (feature_bytes + scratch) / 2**20, feature_bytes / 2**20, scratch / 2**20)
        if matches.num_skipped:
            logger.warning("%d of %d queries have no gallery item with their identity under "
                           "another camera; they are skipped (as FastReID does)",
                           matches.num_skipped, matches.num_query)


def evaluate_compatibility(query_feats: Mapping[Any, Any], gallery_feats: Mapping[Any, Any],
                           q_pids, q_camids, g_pids, g_camids, *, metric: str = "cosine",
                           chunk_size: int = 1024, backend: str = "auto",
                           device: Optional[str] = None,
                           score_hook: Optional[ScoreHook] = None) -> CompatibilityResult:
    """The compatibility matrix of ``{label: (Q, D)}`` query features against ``{label: (G, D)}``
    gallery features (numpy or torch), with ids/cameras (Q,) and (G,)."""
    evaluator = CompatibilityEvaluator(q_pids, q_camids, g_pids, g_camids, metric=metric,
                                       chunk_size=chunk_size, backend=backend, device=device,
                                       score_hook=score_hook)
    return evaluator.evaluate(query_feats, gallery_feats)
