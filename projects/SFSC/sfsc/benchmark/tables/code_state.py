"""The training code as it is on disk, to catch it changing under a running benchmark.

A record's training-numerics fingerprint is computed by the runner's own process, from the code
it imported when it started, while each run trains in a child process that imports the code on
disk when *it* starts. Edited in between, the record would describe code that did not train it.
"""
from __future__ import annotations

import glob
import hashlib
import os
from typing import Dict, List

__all__ = ["code_state", "changed_files"]


def code_state(repo: str) -> Dict[str, str]:
    """SHA-256 of every file a training child imports from ``repo``: the package's Python files
    and ``tools/train_net.py`` (paths relative to ``repo``)."""
    files = sorted(glob.glob(os.path.join(repo, "projects", "SFSC", "sfsc", "**", "*.py"),
                             recursive=True))
    files.append(os.path.join(repo, "tools", "train_net.py"))
    state = {}
    for path in files:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                state[os.path.relpath(path, repo)] = hashlib.sha256(f.read()).hexdigest()
    return state


def changed_files(before: Dict[str, str], after: Dict[str, str]) -> List[str]:
    """Files added, removed or edited between two :func:`code_state`\\ s, sorted."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
