"""What a benchmark invocation does with each run, decided from the records alone: reuse a
matching record, train (no record, a stale one, or a checkpoint this machine lacks) or refuse
(a committed record of a run with other inputs), and why.

:class:`RunPlanner` is the half of :class:`.runner.BenchmarkRunner` that reads records and
decides; the runner trains, writes and retires them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from ...config_checks import ConfigError
from .methods import Run
from .records import config_differences, is_numerics, read_record, record_fingerprint

__all__ = ["RunRecord", "PlannedRun", "RecordConflictError", "RunPlanner"]

RunRecord = Dict[str, object]


class RecordConflictError(ConfigError):
    """Committed records of other runs where this benchmark would write its own."""


@dataclass
class PlannedRun:
    """What an invocation does with one run: ``reuse`` it, ``train`` it (no record, a stale
    one, or for its checkpoint only), or refuse it (``conflict``: a committed record of a run
    with other inputs), and why."""

    seed: int
    run: Run
    action: str  # "reuse" | "train" | "conflict"
    why: str
    record: Optional[RunRecord] = None  # the record in use; None until trained
    stale: Optional[str] = None  # a stale committed record's path, retired before a new one
    uncommitted: bool = False  # ``record`` finished in this machine's folder, not yet written

    def describe(self) -> str:
        verb = {"reuse": "reused", "train": "to train", "conflict": "conflict"}[self.action]
        return f"seed {self.seed} {self.run.name}: {verb} ({self.why})"


class RunPlanner:
    """Record matching and planning. The subclass provides the runs and seeds, where records
    and run folders live (``records_dir``, ``records_from``, :meth:`record_path`,
    :meth:`output_dir`), a run's :meth:`effective_config`, its local :meth:`finished` record
    and :meth:`has_checkpoint`, and :meth:`_committed_form`."""

    def committed(self, run: Run, seed: int) -> Tuple[Optional[RunRecord], List[str]]:
        """The committed record that matches the run, or None and why it does not."""
        return self._committed(run, seed)[1:]

    def _committed(self, run: Run, seed: int
                   ) -> Tuple[str, Optional[RunRecord], List[str]]:
        """(where, record, why not): the run's own record, else a matching one of
        ``records_from``; an own record that does not match is the answer (None, why)."""
        if self.records_dir:
            path = self.record_path(seed, run.name)
            record = read_record(path)
            if record is not None:
                diffs = self._differences(record, run, seed)
                return (path, None, diffs) if diffs else (path, record, [])
        for folder in self.records_from:
            path = os.path.join(folder, f"seed{seed}", run.name + self.record_suffix)
            record = read_record(path)
            if record is not None and not self._differences(record, run, seed):
                return path, record, []
        return "", None, []

    def _differences(self, record: RunRecord, run: Run, seed: int) -> List[str]:
        """Why ``record`` is not of this run (:func:`.records.config_differences`: a key added
        since counts at what it meant before; the fingerprint within its tolerance)."""
        if record.get("run") != run.name or record.get("seed") != seed:
            return [f"it names {record.get('run')} seed {record.get('seed')}"]
        if "effective_config" not in record:
            return ["it holds no effective config (written by an older version)"]
        return config_differences(record["effective_config"], self.effective_config(run, seed))

    def _only_numerics_differ(self, run: Run, seed: int) -> bool:
        """Whether the committed record is of this very run but made by other training code."""
        def strip(config: Dict[str, object]) -> Dict[str, object]:
            return {k: v for k, v in config.items() if not is_numerics(k)}

        record = read_record(self.record_path(seed, run.name))
        if (record is None or "effective_config" not in record
                or record.get("run") != run.name or record.get("seed") != seed):
            return False  # another run's, or too old to tell: a conflict, not a stale record
        return not config_differences(strip(record["effective_config"]),
                                      strip(self.effective_config(run, seed)))

    def expected_fingerprint(self, run: Run, seed: int) -> str:
        """The fingerprint the run's record will have: the matching committed record's, else
        that of a record made now."""
        record, _ = self.committed(run, seed)
        return record["fingerprint"] if record else record_fingerprint(
            run.name, seed, self.effective_config(run, seed))

    def _depth(self, run: Run) -> int:
        return 1 + max((self._depth(self.run_named(n)) for n in run.needs), default=-1)

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.repo)

    def _planned(self, seed: int, run: Run) -> PlannedRun:
        """The run's plan from its records alone (checkpoints come in :meth:`plan`)."""
        where, record, diffs = self._committed(run, seed)
        if record is not None:
            return PlannedRun(seed, run, "reuse", self._relative(where), record)
        stale = self.record_path(seed, run.name) \
            if diffs and self._only_numerics_differ(run, seed) else None
        if diffs and not stale:
            return PlannedRun(seed, run, "conflict", f"{diffs[0]}"
                              + (f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""))
        why = f"its record is stale: {diffs[0]}" if stale else "no record"
        local = self.finished(run, seed)
        if local is not None:  # finished here before records were kept, or not committed
            return PlannedRun(seed, run, "reuse", f"{why}; finished in "
                              f"{self.output_dir(seed, run.name)}",
                              self._committed_form(run, seed, local), stale, True)
        return PlannedRun(seed, run, "train", why, stale=stale)

    def plan(self, need_checkpoints: Iterable[Tuple[int, str]] = ()) -> List[PlannedRun]:
        """What :meth:`run_all` will do with each run, and why; trains and writes nothing.

        Runs without a matching record train, and so does a run whose checkpoint
        ``need_checkpoints`` ((seed, run name) pairs) or a run to train needs and this machine
        lacks. Committed records of runs with other inputs are ``conflict``s (run_all refuses)."""
        planned = {(seed, run.name): self._planned(seed, run)
                   for seed in self.seeds for run in self.runs}
        wanted = [(key, "a matrix to evaluate") for key in need_checkpoints]
        wanted += [((p.seed, need), p.run.name) for p in planned.values()
                   if p.action == "train" for need in p.run.needs]
        while wanted:
            (seed, name), why = wanted.pop(0)
            p = planned[(seed, name)]
            if p.action != "reuse" or self.has_checkpoint(p.run, seed):
                continue
            p.action = "train"
            p.why = (f"{why} needs its checkpoint, absent from {self.output_dir(seed, name)}; "
                     f"its record {p.why} stays in use")
            wanted += [((seed, need), name) for need in p.run.needs]
        return list(planned.values())

    def _refuse_conflicts(self, conflicts: List[PlannedRun]) -> None:
        """Stop before training when committed records belong to runs with other inputs."""
        if not conflicts:
            return
        lines = [f"  {self._relative(self.record_path(p.seed, p.run.name))}: {p.why}"
                 for p in sorted(conflicts, key=lambda p: (p.seed, p.run.name))]
        raise RecordConflictError(
            f"{len(conflicts)} committed run record(s) belong to runs with other inputs than "
            "these, and a record is never replaced by another run's:\n" + "\n".join(lines)
            + "\nTo train these runs, retire those records (git rm them: they stay in the "
            "history) or write this benchmark elsewhere (tools/benchmark.py --output DIR).")
