"""A generated dataset folder, written once and race-free, identified by its ``manifest.json``.

:func:`ensure_generated` reuses a folder whose manifest matches a header (generator, version,
seed, parameters, ...) and whose image counts agree; otherwise it generates into a temporary
sibling folder and renames it into place, so that concurrent processes (DDP ranks) never see a
half-written dataset and the losers of the race simply use the winner's folder.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from typing import Any, Callable, Dict

__all__ = ["MANIFEST", "read_manifest", "write_manifest", "ensure_generated"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def read_manifest(folder: str) -> Dict[str, Any] | None:
    """The folder's manifest, or None if it is missing or unreadable."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_manifest(folder: str, manifest: Dict[str, Any]) -> None:
    """Write ``manifest`` into ``folder``: done last, its presence marks a complete folder."""
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, ensure_ascii=False)


def _is_complete(folder: str, header: Dict[str, Any]) -> bool:
    manifest = read_manifest(folder)
    if manifest is None or any(manifest.get(k) != v for k, v in header.items()):
        return False
    try:  # a folder someone emptied by hand is not complete
        return all(len(os.listdir(os.path.join(folder, s))) == n
                   for s, n in manifest["counts"].items())
    except (OSError, KeyError, AttributeError):
        return False


def _publish(tmp: str, folder: str, header: Dict[str, Any]) -> bool:
    """Move ``tmp`` to ``folder``; False if another process published an equal folder first."""
    for _ in range(10):
        try:
            os.rename(tmp, folder)  # atomic; fails if ``folder`` exists and is not empty
            return True
        except OSError:
            if _is_complete(folder, header):
                return False
        # ``folder`` is stale (other parameters, or damaged): move it aside and retry.
        stale = f"{folder}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, stale)
        except OSError:
            continue  # someone else moved or replaced it meanwhile
        shutil.rmtree(stale, ignore_errors=True)
    raise RuntimeError(f"could not move the generated dataset into place at {folder}")


def ensure_generated(folder: str, header: Dict[str, Any],
                     generate: Callable[[str], Dict[str, Any]], name: str, what: str) -> str:
    """Make ``folder`` hold the dataset ``header`` identifies, unless it already does; return
    its absolute path. ``generate(tmp)`` writes it into ``tmp`` and returns its manifest (with
    ``header``'s entries and ``counts``: images per subset folder); ``what`` describes it for
    the log."""
    folder = os.path.abspath(folder)
    if _is_complete(folder, header):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = f"{folder}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        logger.info(f"Generating {name} ({what}) in {folder} ...")
        start = time.perf_counter()
        manifest = generate(tmp)
        took = time.perf_counter() - start
        won = _publish(tmp, folder, header)
        counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
        if won:
            logger.info(f"Generated {name} in {took:.1f} s: {counts} images")
        else:
            logger.info(f"{name} was generated concurrently by another process; using it")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
