"""Resumable execution of benchmark training runs, with progress and an ETA.

Each run trains in its own process (``tools/train_net.py``) into its own folder. A finished run
leaves ``benchmark_run.json`` there, holding its effective config and seed, the git commit and
its wall time; a later invocation reuses the folder (and its checkpoint) if that config still
matches (keys added since, at their defaults, do not count) and otherwise deletes it and trains
again, so an interrupted run restarts cleanly.

With a ``records_dir`` (committed to git beside the results), every finished run also leaves a
machine-independent record there (see :mod:`.records`); a run whose record matches is not
trained again on any machine. A run is still trained again when its checkpoint is needed and
absent from this machine: a one-to-one method's frozen old model when a run that needs it is
trained, or a member of a matrix that has to be evaluated anew.

A committed record is never replaced by another run's: when its inputs differ (config, weights,
data), the runner stops before training anything and says what differs. Records are kept per
device: ``<run>.json`` for the CPU, ``<run>.cuda.json`` for the GPU, so the two never mix.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from fastreid.config import get_cfg

from ...config import add_sfsc_config
from ...config_checks import ConfigError
from .child_process import run_to_end
from .methods import Run
from .records import (
    config_differences,
    config_file_hashes,
    flatten,
    read_curves,
    read_record,
    record_fingerprint,
    write_record,
)
from .run_inputs import device_kind, input_entries, machine

__all__ = ["RunRecord", "BenchmarkRunner", "RecordConflictError", "git_commit"]

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


class BenchmarkRunner:
    """Trains ``runs`` for every seed under ``root/seed<k>/<run name>``."""

    def __init__(self, repo: str, config_dir: str, root: str, runs: Sequence[Run],
                 seeds: Sequence[int], extra_opts: Sequence[str] = (), log=print,
                 records_dir: Optional[str] = None):
        self.repo, self.config_dir, self.root = repo, config_dir, root
        self.runs, self.seeds, self.extra_opts, self.log = list(runs), list(seeds), \
            list(extra_opts), log
        self.records_dir = records_dir
        # records_dir is <output>/runs: the report beside it is rewritten by every invocation.
        output = os.path.dirname(os.path.abspath(records_dir)) if records_dir else None
        self.commit = git_commit(repo, output)
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
        if not self.records_dir:
            return None, []
        record = read_record(self.record_path(seed, run.name))
        if record is None:
            return None, []
        diffs = self._differences(record, run, seed)
        return (None, diffs) if diffs else (record, [])

    def _differences(self, record: RunRecord, run: Run, seed: int) -> List[str]:
        """Why ``record`` is not of this run: a key added since at its default is no reason."""
        if record.get("run") != run.name or record.get("seed") != seed:
            return [f"it names {record.get('run')} seed {record.get('seed')}"]
        if "effective_config" not in record:
            return ["it holds no effective config (written by an older version)"]
        return config_differences(record["effective_config"], self.effective_config(run, seed))

    def expected_fingerprint(self, run: Run, seed: int) -> str:
        """The fingerprint the run's record will have: the matching committed record's, else
        that of a record made now."""
        record, _ = self.committed(run, seed)
        return record["fingerprint"] if record else record_fingerprint(
            run.name, seed, self.effective_config(run, seed))

    def _depth(self, run: Run) -> int:
        return 1 + max((self._depth(self.run_named(n)) for n in run.needs), default=-1)

    def _to_train(self, jobs, records, need_checkpoints) -> Set[Tuple[int, str]]:
        """Runs without a record, plus those whose checkpoint is needed and absent here."""
        pending = {(s, r.name) for s, r in jobs if records[(s, r.name)] is None}
        wanted = [(key, "a matrix to evaluate") for key in need_checkpoints]
        wanted += [((s, need), name) for s, name in pending
                   for need in self.run_named(name).needs]
        while wanted:
            (seed, name), why = wanted.pop(0)
            if (seed, name) in pending or self.has_checkpoint(self.run_named(name), seed):
                continue
            self.log(f"seed {seed} {name}: its record is reused, but {why} needs its checkpoint "
                     f"(model_final.pth), which is not in {self.output_dir(seed, name)}: "
                     f"training it again")
            pending.add((seed, name))
            wanted += [((seed, need), name) for need in self.run_named(name).needs]
        return pending

    def run_all(self, need_checkpoints: Iterable[Tuple[int, str]] = (),
                seed_trained: Optional[Callable[[int, Dict], None]] = None) -> List[RunRecord]:
        """Train every run without a matching record (dependencies first) and every run whose
        checkpoint ``need_checkpoints`` ((seed, run name) pairs) or a run to train needs and
        this machine lacks; returns every run's record (committed form with a records_dir).
        ``seed_trained(seed, records)`` is called once a seed's last run to train is done."""
        jobs = [(seed, run) for seed in self.seeds for run in self.runs]
        committed = {(seed, run.name): self.committed(run, seed) for seed, run in jobs}
        self._refuse_conflicts({key: diffs for key, (_, diffs) in committed.items() if diffs})
        records: Dict[Tuple[int, str], Optional[RunRecord]] = {}
        for seed, run in jobs:
            record = committed[(seed, run.name)][0]
            local = self.finished(run, seed) if record is None else None
            if local is not None:  # finished here before records were kept, or not committed
                record = self._commit(run, seed, local)
            records[(seed, run.name)] = record
        to_train = self._to_train(jobs, records, need_checkpoints)
        pending = sorted(((s, r) for s, r in jobs if (s, r.name) in to_train),
                         key=lambda job: (job[0], self._depth(job[1])))
        self.log(f"Benchmark: {len(jobs)} runs, {len(jobs) - len(pending)} already finished, "
                 f"{len(pending)} to train ({self.commit})")
        units_total = sum(r.cost for _, r in pending)
        units_done, seconds_done = 0.0, 0.0
        for i, (seed, run) in enumerate(pending, 1):
            eta = f", ETA {_fmt(seconds_done / units_done * (units_total - units_done))}" \
                if units_done else ""
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: training{eta}")
            local = self._train(run, seed)
            # Trained again for its checkpoint only: the record in use stays, so the matrices
            # cached from it stay valid (its fingerprint is that of the config it was made by).
            if records[(seed, run.name)] is None:
                records[(seed, run.name)] = self._commit(run, seed, local)
            units_done += run.cost
            seconds_done += float(local["wall_time_s"])
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: done in "
                     f"{_fmt(float(local['wall_time_s']))}")
            if seed_trained is not None and (i == len(pending) or pending[i][0] != seed):
                seed_trained(seed, records)
        return [records[(s, r.name)] for s, r in jobs]

    def _refuse_conflicts(self, conflicts: Dict[Tuple[int, str], List[str]]) -> None:
        """Stop before training when committed records belong to runs with other inputs."""
        if not conflicts:
            return
        lines = [f"  {self.record_path(seed, name)}: {diffs[0]}"
                 + (f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else "")
                 for (seed, name), diffs in sorted(conflicts.items())]
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

    def _commit(self, run: Run, seed: int, local: RunRecord) -> RunRecord:
        """The committed form of a finished local run (written when there is a records_dir)."""
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
        if self.records_dir:
            write_record(self.record_path(seed, run.name), record)
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
