"""Resumable execution of benchmark training runs, with progress and an ETA.

Each run trains in its own process (``tools/train_net.py``) into its own folder. A finished run
leaves ``benchmark_run.json`` holding a fingerprint of its full merged config and seed, the git
commit and its wall time; a later invocation reuses it if the fingerprint still matches and
otherwise deletes the folder and trains again, so an interrupted run restarts cleanly.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from fastreid.config import get_cfg

from ..config import add_sfsc_config
from .methods import Run

__all__ = ["RunRecord", "BenchmarkRunner", "git_commit"]

RECORD = "benchmark_run.json"
RunRecord = Dict[str, object]


def git_commit(repo: str) -> str:
    """HEAD's hash, with ``-dirty`` if tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


class BenchmarkRunner:
    """Trains ``runs`` for every seed under ``root/seed<k>/<run name>``."""

    def __init__(self, repo: str, config_dir: str, root: str, runs: Sequence[Run],
                 seeds: Sequence[int], extra_opts: Sequence[str] = (), log=print):
        self.repo, self.config_dir, self.root = repo, config_dir, root
        self.runs, self.seeds, self.extra_opts, self.log = list(runs), list(seeds), \
            list(extra_opts), log
        self.commit = git_commit(repo)

    def output_dir(self, seed: int, name: str) -> str:
        return os.path.join(self.root, f"seed{seed}", name)

    def _opts(self, run: Run, seed: int) -> List[str]:
        opts = [o.format(**{r.name: self.output_dir(seed, r.name) for r in self.runs})
                for o in run.overrides]
        return opts + list(self.extra_opts) + ["SEED", str(seed),
                                               "OUTPUT_DIR", self.output_dir(seed, run.name)]

    def fingerprint(self, run: Run, seed: int) -> str:
        cfg = get_cfg()
        add_sfsc_config(cfg)
        cfg.merge_from_file(os.path.join(self.config_dir, run.config))
        cfg.merge_from_list(self._opts(run, seed))
        return hashlib.sha256(cfg.dump().encode()).hexdigest()[:16]

    def finished(self, run: Run, seed: int) -> Optional[RunRecord]:
        path = os.path.join(self.output_dir(seed, run.name), RECORD)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            record = json.load(f)
        return record if record.get("fingerprint") == self.fingerprint(run, seed) else None

    def run_all(self) -> List[RunRecord]:
        """Train every missing run (dependencies first); returns every run's record."""
        jobs = [(seed, run) for seed in self.seeds for run in self.runs]
        pending = [(s, r) for s, r in jobs if self.finished(r, s) is None]
        self.log(f"Benchmark: {len(jobs)} runs, {len(jobs) - len(pending)} already finished, "
                 f"{len(pending)} to train ({self.commit})")
        units_total = sum(r.cost for _, r in pending)
        units_done, seconds_done = 0.0, 0.0
        for i, (seed, run) in enumerate(pending, 1):
            eta = f", ETA {_fmt(seconds_done / units_done * (units_total - units_done))}" \
                if units_done else ""
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: training{eta}")
            record = self._train(run, seed)
            units_done += run.cost
            seconds_done += float(record["wall_time_s"])
            self.log(f"[{i}/{len(pending)}] seed {seed} {run.name}: done in "
                     f"{_fmt(float(record['wall_time_s']))}")
        return [self.finished(r, s) for s, r in jobs]

    def _portable(self, arg: str) -> str:
        # Records name files inside the repository relative to it, so they read the same on
        # every machine that reruns the command from the repository root.
        if os.path.isabs(arg) and os.path.commonpath([arg, self.repo]) == self.repo:
            return os.path.relpath(arg, self.repo)
        return arg

    def _train(self, run: Run, seed: int) -> RunRecord:
        for need in run.needs:
            if self.finished(next(r for r in self.runs if r.name == need), seed) is None:
                raise RuntimeError(f"{run.name} needs {need}, which has not finished")
        out = self.output_dir(seed, run.name)
        if os.path.exists(out):  # a partial run from an interrupted invocation
            shutil.rmtree(out)
        os.makedirs(out)
        command = [sys.executable, os.path.join(self.repo, "tools", "train_net.py"),
                   "--config-file", os.path.join(self.config_dir, run.config),
                   *self._opts(run, seed)]
        start = time.time()
        with open(os.path.join(out, "stdout.txt"), "w") as stdout:
            code = subprocess.call(command, stdout=stdout, stderr=subprocess.STDOUT,
                                   cwd=self.repo)
        wall = time.time() - start
        if code != 0:
            raise RuntimeError(f"{run.name} (seed {seed}) failed with exit code {code}; see "
                               f"{os.path.join(out, 'log.txt')} and stdout.txt")
        record = {"run": run.name, "config": os.path.relpath(
                      os.path.join(self.config_dir, run.config), self.repo),
                  "overrides": [self._portable(a) for a in self._opts(run, seed)[:-2]],
                  "seed": seed,
                  "git_commit": self.commit, "wall_time_s": round(wall, 1),
                  "fingerprint": self.fingerprint(run, seed),
                  "command": ["python"] + [self._portable(a) for a in command[1:]],
                  "finished": datetime.datetime.now().isoformat(timespec="seconds")}
        with open(os.path.join(out, RECORD), "w") as f:
            json.dump(record, f, indent=1)
        return record
