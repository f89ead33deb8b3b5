"""Resumable execution of benchmark training runs, with progress and an ETA.

Each run trains in its own process (``tools/train_net.py``) into its own folder. A finished run
leaves ``benchmark_run.json`` there, holding its effective config (training-numerics
fingerprint included) and seed, the git commit and its wall time; a later invocation reuses the
folder (and its checkpoint) if that config still matches (see :mod:`.records`) and otherwise
deletes it and trains again, so an interrupted run restarts cleanly.

With a ``records_dir`` (committed to git beside the results), every finished run also leaves a
machine-independent record there (see :mod:`.records`); a run whose record matches is not
trained again on any machine. A run is still trained again when its checkpoint is needed and
absent from this machine: a one-to-one method's frozen old model when a run that needs it is
trained, or a member of a matrix that has to be evaluated anew; its record stays.

A committed record is never replaced by another run's: when its inputs differ (config, weights,
data), the runner stops before training anything and says what differs. When only the training
code differs (the fingerprint), the record is stale: the run trains again and the old record
moves to ``<records dir>/retired/seed<k>/<run>.<its fingerprint>.json`` (``-2``, ``-3``, ... when
that name is taken) before the new one is written. The code must stay as it is on disk while
the runner runs: each run trains in a child process that imports it anew, while the records'
fingerprints come from this process, so a run that ends with other code on disk writes no
record (:mod:`.code_state`). :meth:`BenchmarkRunner.plan` says for each run what will happen
and why, training nothing. Records are kept per device: ``<run>.json`` for the CPU,
``<run>.cuda.json`` for the GPU, so the two never mix.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from fastreid.config import get_cfg

from ...config import add_sfsc_config
from ...config_checks import ConfigError
from .child_process import run_to_end
from .code_state import changed_files, code_state
from .methods import Run
from .records import (
    config_differences,
    config_file_hashes,
    flatten,
    is_numerics,
    read_curves,
    read_record,
    record_fingerprint,
    write_record,
)
from .run_inputs import device_kind, input_entries, machine

__all__ = ["RunRecord", "BenchmarkRunner", "PlannedRun", "RecordConflictError", "git_commit"]

RECORD = "benchmark_run.json"
RunRecord = Dict[str, object]


def git_commit(repo: str, ignore: Optional[str] = None) -> str:
    """HEAD's hash, with ``-dirty`` if tracked files differ from it; ``unknown`` outside git.

    Files under ``ignore`` (a benchmark's output folder: the run records and the report it
    rewrites as it goes) do not count.
    """
    spec, repo = [], os.path.abspath(repo)
    if ignore and os.path.commonpath([os.path.abspath(ignore), repo]) == repo:
        spec = ["--", ".", f":(exclude){os.path.relpath(os.path.abspath(ignore), repo)}"]
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "-uno", *spec],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class RecordConflictError(ConfigError):
    """Committed records of other runs where this benchmark would write its own."""


def _fmt(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


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


class BenchmarkRunner:
    """Trains ``runs`` for every seed under ``root/seed<k>/<run name>``."""

    def __init__(self, repo: str, config_dir: str, root: str, runs: Sequence[Run],
                 seeds: Sequence[int], extra_opts: Sequence[str] = (), log=print,
                 records_dir: Optional[str] = None, records_from: Sequence[str] = ()):
        self.repo, self.config_dir, self.root = repo, config_dir, root
        self.runs, self.seeds, self.extra_opts, self.log = list(runs), list(seeds), \
            list(extra_opts), log
        self.records_dir = records_dir
        #: Other benchmarks' record folders (``runs/``): a run without a record of its own
        #: reuses a matching one there as it is, without a copy (e.g. a schedule selection's).
        self.records_from = list(records_from)
        # records_dir is <output>/<dataset>/runs: the reports and records under <output> are
        # rewritten by invocations (this one's, or another dataset's queued before it), not code.
        output = os.path.dirname(os.path.dirname(os.path.abspath(records_dir))) \
            if records_dir else None
        self.commit = git_commit(repo, output)
        self.code = code_state(repo)  # what this process imported, and fingerprints
        #: "cpu" or "cuda": the device this machine trains the runs on, which names records.
        self.device = device_kind(self._cfg(self.runs[0], self.extra_opts)) if self.runs \
            else "cpu"

    def output_dir(self, seed: int, name: str) -> str:
        return os.path.join(self.root, f"seed{seed}", name)

    @property
    def record_suffix(self) -> str:
        """What ends a record's file name on this device: ``.json``, ``.cuda.json``."""
        return ".json" if self.device == "cpu" else f".{self.device}.json"

    def record_path(self, seed: int, name: str) -> str:
        """Where the committed record of ``name`` at ``seed`` on this device lives."""
        return os.path.join(self.records_dir, f"seed{seed}", name + self.record_suffix)

    def run_named(self, name: str) -> Run:
        return next(r for r in self.runs if r.name == name)

    def _opts(self, run: Run, seed: int) -> List[str]:
        opts = [o.format(**{r.name: self.output_dir(seed, r.name) for r in self.runs})
                for o in run.overrides]
        return opts + list(self.extra_opts) + ["SEED", str(seed),
                                               "OUTPUT_DIR", self.output_dir(seed, run.name)]

    def finished(self, run: Run, seed: int) -> Optional[RunRecord]:
        """The local folder's record, if that folder holds this very run, finished."""
        record = read_record(os.path.join(self.output_dir(seed, run.name), RECORD))
        return record if record and not self._differences(record, run, seed) else None

    def has_checkpoint(self, run: Run, seed: int) -> bool:
        return self.finished(run, seed) is not None and os.path.isfile(
            os.path.join(self.output_dir(seed, run.name), "model_final.pth"))

    def _cfg(self, run: Run, opts: Sequence[str]):
        cfg = get_cfg()
        add_sfsc_config(cfg)
        cfg.merge_from_file(os.path.join(self.config_dir, run.config))
        cfg.merge_from_list(list(opts))
        return cfg

    def effective_config(self, run: Run, seed: int) -> Dict[str, object]:
        """The run's merged config, flattened, as it reads on any machine (see .records)."""
        # The dependencies' paths stay as {run} placeholders: their configs are added below.
        cfg = self._cfg(run, [self._portable(o) for o in (*run.overrides, *self.extra_opts)]
                        + ["SEED", str(seed)])
        effective = flatten(cfg)
        del effective["OUTPUT_DIR"]
        effective.update(input_entries(cfg, self.repo))
        for need in run.needs:
            effective.update((f"{need}:{k}", v)
                             for k, v in self.effective_config(self.run_named(need), seed).items())
        return effective

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

    def run_all(self, need_checkpoints: Iterable[Tuple[int, str]] = (),
                seed_trained: Optional[Callable[[int, Dict], None]] = None) -> List[RunRecord]:
        """Train what :meth:`plan` says, dependencies first; returns every run's record
        (committed form with a records_dir). ``seed_trained(seed, records)`` is called once a
        seed's last run to train is done."""
        planned = self.plan(need_checkpoints)
        self._refuse_conflicts([p for p in planned if p.action == "conflict"])
        records: Dict[Tuple[int, str], Optional[RunRecord]] = {
            (p.seed, p.run.name): p.record for p in planned}
        for p in planned:
            if p.uncommitted:
                self._write(p)
        pending = sorted((p for p in planned if p.action == "train"),
                         key=lambda p: (p.seed, self._depth(p.run)))
        self.log(f"Benchmark: {len(planned)} runs, {len(planned) - len(pending)} already "
                 f"finished, {len(pending)} to train ({self.commit})")
        units_total = sum(p.run.cost for p in pending)
        units_done, seconds_done = 0.0, 0.0
        for i, p in enumerate(pending, 1):
            seed, run = p.seed, p.run
            eta = f", ETA {_fmt(seconds_done / units_done * (units_total - units_done))}" \
                if units_done else ""
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: training ({p.why}){eta}")
            local = self._train(run, seed)
            # Trained again for its checkpoint only: the record in use stays, so the matrices
            # cached from it stay valid (its fingerprint is that of the config it was made by).
            if records[(seed, run.name)] is None:
                p.record = records[(seed, run.name)] = self._committed_form(run, seed, local)
                self._write(p)
            units_done += run.cost
            seconds_done += float(local["wall_time_s"])
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: done in "
                     f"{_fmt(float(local['wall_time_s']))}")
            if seed_trained is not None and (i == len(pending) or pending[i].seed != seed):
                seed_trained(seed, records)
        return [records[(p.seed, p.run.name)] for p in planned]

    def _write(self, p: PlannedRun) -> None:
        """Write ``p.record`` as the committed record, a stale one moved aside first."""
        if not self.records_dir:
            return
        if p.stale:
            self._retire(p.stale)
        write_record(self.record_path(p.seed, p.run.name), p.record)

    def _retire(self, path: str) -> None:
        """Move a stale committed record to ``retired/``, named by its fingerprint."""
        record = read_record(path)
        seed_dir = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)[:-len(".json")]
        stem = os.path.join(self.records_dir, "retired", seed_dir,
                            f"{name}.{record.get('fingerprint', 'unknown')}")
        target, n = stem + ".json", 1
        while os.path.exists(target):  # the same run retired twice: both kept
            n += 1
            target = f"{stem}-{n}.json"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(path, target)
        self.log(f"Retired the stale record {self._relative(path)} to {self._relative(target)}")

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

    def _portable(self, arg: str) -> str:
        # Records name files inside the repository relative to it, so they read the same on
        # every machine that reruns the command from the repository root.
        if os.path.isabs(arg) and os.path.commonpath([arg, self.repo]) == self.repo:
            return os.path.relpath(arg, self.repo)
        return arg

    def _committed_form(self, run: Run, seed: int, local: RunRecord) -> RunRecord:
        """The committed form of a finished local run (:meth:`_write` writes it)."""
        out = self.output_dir(seed, run.name)
        effective = self.effective_config(run, seed)
        compat = read_record(os.path.join(out, "compatibility.json"))
        record = dict(local)
        record.update(
            fingerprint=record_fingerprint(run.name, seed, effective),
            config_files=config_file_hashes(os.path.join(self.config_dir, run.config),
                                            self.repo),
            final_metrics=None if compat is None else {
                "width": (compat.get("widths") or [None])[-1],
                **{m: compat[m][-1][-1] for m in ("mAP", "R1", "R5", "R10", "mINP")
                   if m in compat}},
            compatibility=compat, effective_config=effective,
            curves=read_curves(os.path.join(out, "metrics.json")))
        return record

    def _train(self, run: Run, seed: int) -> RunRecord:
        for need in run.needs:
            if not self.has_checkpoint(self.run_named(need), seed):
                raise RuntimeError(f"{run.name} needs {need}'s checkpoint, which is not in "
                                   f"{self.output_dir(seed, need)}")
        out = self.output_dir(seed, run.name)
        if os.path.exists(out):  # a partial run from an interrupted invocation
            shutil.rmtree(out)
        os.makedirs(out)
        command = [sys.executable, os.path.join(self.repo, "tools", "train_net.py"),
                   "--config-file", os.path.join(self.config_dir, run.config),
                   *self._opts(run, seed)]
        start = time.time()
        with open(os.path.join(out, "stdout.txt"), "w") as stdout:
            code = run_to_end(command, stdout=stdout, cwd=self.repo)
        wall = time.time() - start
        if code != 0:
            raise RuntimeError(f"{run.name} (seed {seed}) failed with exit code {code}; see "
                               f"{os.path.join(out, 'log.txt')} and stdout.txt")
        changed = changed_files(self.code, code_state(self.repo))
        if changed:
            raise RuntimeError(
                "The training code changed on disk while the benchmark ran ("
                f"{', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}): {run.name} "
                f"(seed {seed}) may have "
                "trained with code other than the one this process fingerprints, so no record is "
                "written for it. Keep the code fixed while a benchmark runs (e.g. train from a "
                "git worktree) and run the command again.")
        record = {"run": run.name, "config": os.path.relpath(
                      os.path.join(self.config_dir, run.config), self.repo),
                  "overrides": [self._portable(a) for a in self._opts(run, seed)[:-2]],
                  "seed": seed,
                  "git_commit": self.commit, "wall_time_s": round(wall, 1),
                  "machine": machine(self.device),
                  "effective_config": self.effective_config(run, seed),
                  "command": ["python"] + [self._portable(a) for a in command[1:]],
                  "finished": datetime.datetime.now().isoformat(timespec="seconds")}
        with open(os.path.join(out, RECORD), "w") as f:
            json.dump(record, f, indent=1)
        return record
