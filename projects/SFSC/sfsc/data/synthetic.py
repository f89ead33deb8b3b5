"""Writing a synthetic ReID dataset to disk in Market-1501's layout, once, race-free.

:func:`ensure_synthetic_reid` is what datasets call: it reuses a folder whose ``manifest.json``
matches (generator version, parameters, seed) and whose image counts agree; otherwise it
renders the dataset anew (:func:`sfsc.data.generated.ensure_generated`).
"""
from __future__ import annotations

import os
from typing import Any, Dict

import numpy as np

from .appearance import distractor_identity
from .generated import MANIFEST, ensure_generated, read_manifest, write_manifest
from .layout import SUBSETS, DatasetPlan, plan_dataset
from .params import GenerationParams
from .render import render_image

__all__ = ["GENERATOR_VERSION", "MANIFEST", "manifest_header", "render_plan",
           "generate_synthetic_reid", "ensure_synthetic_reid", "read_manifest"]

#: Bump whenever rendering or layout changes, so that old folders are regenerated.
GENERATOR_VERSION = 1


def manifest_header(p: GenerationParams, seed: int) -> Dict[str, Any]:
    """What identifies a generated dataset: generator, its version, seed and parameters."""
    return {"generator": "sfsc.data.synthetic", "version": GENERATOR_VERSION, "seed": int(seed),
            "params": p.to_dict()}


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
    write_manifest(folder, manifest)
    return manifest


def ensure_synthetic_reid(folder: str, p: GenerationParams, seed: int,
                          name: str = "synthetic ReID") -> str:
    """Generate the dataset of ``(p, seed)`` at ``folder`` unless it is there; return the path."""
    return ensure_generated(
        folder, manifest_header(p, seed), lambda tmp: generate_synthetic_reid(tmp, p, seed), name,
        f"seed {seed}: {p.num_train_ids} train / {p.num_test_ids} test identities, "
        f"{p.num_cameras} cameras")
