"""Writing a synthetic ReID dataset to disk in Market-1501's layout, once, race-free.

:func:`ensure_synthetic_reid` is what datasets call: it reuses a folder whose ``manifest.json``
matches (generator version, parameters, seed) and whose image counts agree; otherwise it
renders into a temporary sibling folder and renames it into place, so that concurrent
processes (DDP ranks) never see a half-written dataset and the losers of the race simply
use the winner's folder.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from typing import Any, Dict

import numpy as np

from .appearance import distractor_identity
from .layout import SUBSETS, DatasetPlan, plan_dataset
from .params import GenerationParams
from .render import render_image

__all__ = ["GENERATOR_VERSION", "MANIFEST", "manifest_header", "render_plan",
           "generate_synthetic_reid", "ensure_synthetic_reid", "read_manifest"]

logger = logging.getLogger(__name__)

#: Bump whenever rendering or layout changes, so that old folders are regenerated.
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"


def manifest_header(p: GenerationParams, seed: int) -> Dict[str, Any]:
    """What identifies a generated dataset: generator, its version, seed and parameters."""
    return {"generator": "sfsc.data.synthetic", "version": GENERATOR_VERSION, "seed": int(seed),
            "params": p.to_dict()}


def read_manifest(folder: str) -> Dict[str, Any] | None:
    """The folder's manifest, or None if it is missing or unreadable."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(folder: str, header: Dict[str, Any]) -> bool:
    manifest = read_manifest(folder)
    if manifest is None or any(manifest.get(k) != v for k, v in header.items()):
        return False
    try:  # a folder someone emptied by hand is not complete
        return all(len(os.listdir(os.path.join(folder, s))) == n
                   for s, n in manifest["counts"].items())
    except (OSError, KeyError, AttributeError):
        return False


def render_plan(plan: DatasetPlan, folder: str) -> None:
    """Render every image of ``plan`` into ``folder``/<subset>/<name>.jpg (JPEG, camera quality)."""
    for s in SUBSETS:
        os.makedirs(os.path.join(folder, s), exist_ok=True)
    p = plan.params
    for rec in plan.images:
        rng = np.random.default_rng(rec.seed)
        cam = plan.cameras[rec.camera - 1]
        if rec.identity >= 0:
            person = plan.identities[rec.identity]
        else:
            person = None if rec.empty else distractor_identity(rng, p)
        img = render_image(person, cam, rec.pose, p, rng)
        img.save(os.path.join(folder, rec.subset, rec.filename), quality=cam.jpeg_quality)


def generate_synthetic_reid(folder: str, p: GenerationParams, seed: int) -> Dict[str, Any]:
    """Write the dataset of ``(p, seed)`` into ``folder`` (not atomic); return its manifest."""
    plan = plan_dataset(p, seed)
    render_plan(plan, folder)
    manifest = dict(manifest_header(p, seed), counts=plan.counts(),
                    num_ids={"train": len(plan.train_pids), "test": len(plan.test_pids)})
    # Written last: its presence marks a complete folder.
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


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


def ensure_synthetic_reid(folder: str, p: GenerationParams, seed: int,
                          name: str = "synthetic ReID") -> str:
    """Generate the dataset of ``(p, seed)`` at ``folder`` unless it is there; return the path."""
    folder = os.path.abspath(folder)
    header = manifest_header(p, seed)
    if _is_complete(folder, header):
        return folder
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{folder}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        logger.info(f"Generating {name} (seed {seed}: {p.num_train_ids} train / {p.num_test_ids} "
                    f"test identities, {p.num_cameras} cameras) in {folder} ...")
        start = time.perf_counter()
        manifest = generate_synthetic_reid(tmp, p, seed)
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
