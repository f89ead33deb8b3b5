"""The matrix of a per-width / one-to-one method: its separately trained models scored as one
set, cached beside the committed run records so that another machine does not re-evaluate it.

The cache ``<records dir>/seed<k>/<method>_matrix.json`` (``.cuda.json`` on the GPU) holds the
members' record fingerprints; it is reused while they are the fingerprints of the records in
use, and evaluated anew (from the members' checkpoints) otherwise. It also holds the checksum
of each checkpoint it was evaluated from (``checkpoints``): a member trained again on another
machine for its checkpoint keeps its record, and the cache says which weights it scored.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Set, Tuple

from ...engine import SFSCTrainer
from ...evaluation.model_set import ModelEntry, evaluate_model_set, load_trained_config
from .methods import Method, matrix_members
from .plan import RunRecord
from .records import read_record, write_record
from .run_inputs import file_checksum
from .runner import BenchmarkRunner

__all__ = ["cached_matrix", "is_cached", "members_to_evaluate", "model_set_matrix"]


def _cache_path(runner: BenchmarkRunner, method: Method, seed: int) -> str:
    folder = runner.records_dir or runner.root
    return os.path.join(folder, f"seed{seed}", f"{method.key}_matrix{runner.record_suffix}")


def cached_matrix(runner: BenchmarkRunner, method: Method, seed: int,
                  stamps: Sequence[str]) -> Optional[dict]:
    """The cached matrix if it was computed from the models ``stamps`` (fingerprints) name."""
    cached = read_record(_cache_path(runner, method, seed))
    return cached["matrix"] if cached and cached.get("members") == list(stamps) else None


def is_cached(runner: BenchmarkRunner, method: Method, widths: Sequence[float],
              seed: int) -> bool:
    """Whether the method's matrix at ``seed`` is cached for the records its members will use."""
    names = [name for _, name, _ in matrix_members(method, widths)]
    stamps = [runner.expected_fingerprint(runner.run_named(n), seed) for n in names]
    return cached_matrix(runner, method, seed, stamps) is not None


def members_to_evaluate(runner: BenchmarkRunner, method: Method, widths: Sequence[float],
                        seeds: Sequence[int]) -> Set[Tuple[int, str]]:
    """(seed, run name) of the models whose checkpoints the method's uncached matrices need."""
    return {(seed, name) for seed in seeds if not is_cached(runner, method, widths, seed)
            for _, name, _ in matrix_members(method, widths)}


def model_set_matrix(runner: BenchmarkRunner, method: Method, widths: Sequence[float],
                     seed: int, records: Dict[Tuple[int, str], RunRecord]) -> dict:
    """The compatibility.json dict of the method's models at ``seed``, cached."""
    members = matrix_members(method, widths)
    stamps = [records[(seed, name)]["fingerprint"] for _, name, _ in members]
    matrix = cached_matrix(runner, method, seed, stamps)
    if matrix is not None:
        return matrix
    entries = [ModelEntry(label, runner.output_dir(seed, name), w) for label, name, w in members]
    cfg = load_trained_config(entries[0].output_dir)
    loader, num_query = SFSCTrainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
    matrix = evaluate_model_set(entries, loader, num_query, metric=cfg.TEST.METRIC,
                                chunk_size=cfg.TEST.COMPAT.CHUNK_SIZE).to_json()
    checkpoints = [file_checksum(os.path.join(e.output_dir, e.checkpoint)) for e in entries]
    write_record(_cache_path(runner, method, seed),
                 {"members": stamps, "checkpoints": checkpoints, "matrix": matrix})
    return matrix
