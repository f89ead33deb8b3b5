"""Exact many-to-many compatibility evaluation (FastReID's metrics for every model pair).

The trainer calls :func:`evaluate_compatibility` (or builds a :class:`CompatibilityEvaluator`
with ``from_config``); :func:`evaluate_ranking` scores one query / gallery pair and
:func:`search_topk` returns exact ranked lists.
"""
from .compatibility_evaluator import (
    METRIC_NAMES,
    CompatibilityEvaluator,
    CompatibilityResult,
    evaluate_compatibility,
    format_label,
)
from .matches import MatchIndex
from .ranking import QueryBlock, RankMetrics, ScoreHook, evaluate_ranking
from .retrieval import cmc_from_topk, search_topk
from .similarity import BACKENDS, METRICS, make_scorer

__all__ = [
    "BACKENDS", "METRICS", "METRIC_NAMES", "CompatibilityEvaluator", "CompatibilityResult",
    "MatchIndex", "QueryBlock", "RankMetrics", "ScoreHook", "cmc_from_topk",
    "evaluate_compatibility", "evaluate_ranking", "format_label", "make_scorer", "search_topk",
]
