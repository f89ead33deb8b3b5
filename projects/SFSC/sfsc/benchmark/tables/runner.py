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
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from fastreid.config import get_cfg

from ...config import add_sfsc_config
from .child_process import run_to_end
from .code_state import changed_files, code_state
from .methods import Run
from .plan import PlannedRun, RunPlanner, RunRecord
from .records import (
    config_file_hashes,
    flatten,
    read_curves,
    read_record,
    record_fingerprint,
    write_record,
)
from .run_inputs import device_kind, input_entries, machine

__all__ = ["BenchmarkRunner", "RECORD", "git_commit"]

RECORD = "benchmark_run.json"


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


def _fmt(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


class BenchmarkRunner(RunPlanner):
    """Trains ``runs`` for every seed under ``root/seed<k>/<run name>``: what
    :meth:`~.plan.RunPlanner.plan` says, one run at a time."""

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
