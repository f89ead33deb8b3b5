"""Training runs as child processes that never outlive the runner.

A killed runner (SIGTERM from ``kill``, a scheduler or a closed session) would otherwise leave its
training child running: the orphan keeps writing into the run's folder while the next invocation
deletes that folder and trains the same run again, so two processes write one output.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from typing import IO, Optional, Sequence


def run_to_end(command: Sequence[str], stdout: Optional[IO] = None, cwd: Optional[str] = None,
               grace_s: float = 30.0) -> int:
    """Runs ``command`` (stderr into ``stdout``) and returns its exit code; if this process is
    interrupted meanwhile (Ctrl-C, or SIGTERM after ``exit_on_sigterm``), the child is stopped
    first (SIGTERM, SIGKILL after ``grace_s`` seconds) and the interruption goes on."""
    child = subprocess.Popen(list(command), stdout=stdout, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        return child.wait()
    except BaseException:
        child.terminate()
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def exit_on_sigterm() -> None:
    """Turns SIGTERM into ``SystemExit(143)`` so that cleanup (``run_to_end``'s) runs: Python's
    default for SIGTERM ends the process at once."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
