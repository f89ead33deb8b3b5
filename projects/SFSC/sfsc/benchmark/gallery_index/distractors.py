"""Real distractor features: a trained model's features of images of people outside every split
of a synthetic test set, seen by that test set's own cameras.

Identities come from the synthetic generator under other seeds (:func:`plan_dataset` with
seeds from ``10_000``), so none is a training or test identity; each image is rendered as the
dataset renders its own (same per-image seed, pose and JPEG quality), but under the camera of
the test set with the same number, then extracted with the evaluation's own function
(:func:`extract_features`: test transforms, flip as configured). Features are cached in a file
keyed by everything that changes them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms

from ...data.layout import DatasetPlan, ImageRecord, plan_dataset
from ...data.params import GenerationParams
from ...data.render import render_image
from ...evaluation.feature_extraction import extract_features

logger = logging.getLogger(__name__)

__all__ = ["DISTRACTOR_PID_BASE", "RealDistractors", "real_distractors", "synthetic_params"]

#: Distractor identities are numbered from here: far above every dataset identity (<= 1501).
DISTRACTOR_PID_BASE = 10_000_000
_PLAN_SEED_BASE = 10_000
_IDS_PER_PLAN = 1000


class RealDistractors(NamedTuple):
    feats: Dict[float, np.ndarray]  # width -> (n_w, D) float32; 1.0: all rows, others: first n_w
    pids: np.ndarray  # (n,) int64, from DISTRACTOR_PID_BASE
    camids: np.ndarray  # (n,) int64, 0-based


def synthetic_params(dataset: str) -> Tuple[GenerationParams, int]:
    """(generation parameters, seed) of the registered synthetic dataset ``dataset``."""
    cls = DATASET_REGISTRY.get(dataset)
    params, seed = getattr(cls, "params", None), getattr(cls, "default_seed", None)
    if not isinstance(params, GenerationParams) or seed is None:
        raise ValueError(f"{dataset} is not a synthetic dataset: real distractors are rendered "
                         "for the synthetic test sets (SyntheticReID, SyntheticReIDHard, ...)")
    return params, int(seed)


def _records(params: GenerationParams, count: int, ids_per_plan: int = _IDS_PER_PLAN
             ) -> List[Tuple[DatasetPlan, ImageRecord, int]]:
    """(plan, image, distractor pid) of ``count`` images of identities outside every split."""
    chosen: List[Tuple[DatasetPlan, ImageRecord, int]] = []
    j = 0
    while len(chosen) < count:
        p = dataclasses.replace(params, num_train_ids=0, num_test_ids=ids_per_plan,
                                num_distractors=0)
        plan = plan_dataset(p, _PLAN_SEED_BASE + j)
        for rec in plan.images[:count - len(chosen)]:
            chosen.append((plan, rec, DISTRACTOR_PID_BASE + j * 10_000 + rec.pid))
        j += 1
    return chosen


class _Batches:
    """FastReID-like test batches (images, targets, camids) of rendered distractor images."""

    def __init__(self, records, cameras, transform, batch_size: int):
        self.records, self.cameras = records, cameras
        self.transform, self.batch_size = transform, batch_size

    def __len__(self) -> int:
        return (len(self.records) + self.batch_size - 1) // self.batch_size

    def _image(self, plan: DatasetPlan, rec: ImageRecord) -> Image.Image:
        camera = self.cameras[rec.camera - 1]
        image = render_image(plan.identities[rec.identity], camera, rec.pose, plan.params,
                             np.random.default_rng(rec.seed))
        buffer = io.BytesIO()  # the dataset stores JPEGs: the model sees their artefacts
        image.save(buffer, format="JPEG", quality=camera.jpeg_quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")

    def __iter__(self):
        for lo in range(0, len(self.records), self.batch_size):
            chunk = self.records[lo:lo + self.batch_size]
            images = torch.stack([self.transform(self._image(plan, rec)) for plan, rec, _ in chunk])
            yield {"images": images, "targets": torch.tensor([pid for *_, pid in chunk]),
                   "camids": torch.tensor([rec.camera - 1 for _, rec, _ in chunk])}


def _cache_key(cfg, weights: str, dataset: str, count: int, sub_count: int,
               widths: Sequence[float]) -> str:
    stat = os.stat(weights)
    text = json.dumps([os.path.abspath(weights), stat.st_size, stat.st_mtime_ns, dataset, count,
                       sub_count, sorted(widths), list(cfg.INPUT.SIZE_TEST),
                       bool(cfg.TEST.FLIP.ENABLED), _PLAN_SEED_BASE, _IDS_PER_PLAN])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def real_distractors(cfg, model, weights: str, dataset: str, count: int, sub_count: int,
                     widths: Sequence[float], cache_dir: str, batch_size: int = 128
                     ) -> RealDistractors:
    """Features of ``count`` distractor images at width 1.0, and of the first ``sub_count`` at
    every other width of ``widths`` (to train a quantiser on several widths)."""
    sub_count = max(1, min(sub_count, count))
    key = _cache_key(cfg, weights, dataset, count, sub_count, widths)
    path = os.path.join(cache_dir, f"distractors_{key}.npz")
    if os.path.isfile(path):
        with np.load(path) as data:
            logger.info(f"Real distractor features from the cache {path}")
            return RealDistractors({float(k[6:]): data[k] for k in data.files
                                    if k.startswith("feats_")}, data["pids"], data["camids"])
    params, seed = synthetic_params(dataset)
    cameras = plan_dataset(params, seed).cameras
    records = _records(params, count)
    transform = build_transforms(cfg, is_train=False)
    flip = bool(cfg.TEST.FLIP.ENABLED)
    logger.info(f"Rendering and extracting {count} distractor images ({sub_count} of them at "
                f"widths {list(widths)}) ...")
    sub = _Batches(records[:sub_count], cameras, transform, batch_size)
    feats, pids, camids = extract_features(model, sub, list(widths), flip=flip)
    feats = {w: f.numpy() for w, f in feats.items()}
    if count > sub_count:
        rest = _Batches(records[sub_count:], cameras, transform, batch_size)
        more, more_pids, more_camids = extract_features(model, rest, [1.0], flip=flip)
        feats[1.0] = np.concatenate([feats[1.0], more[1.0].numpy()])
        pids, camids = torch.cat([pids, more_pids]), torch.cat([camids, more_camids])
    result = RealDistractors(feats, pids.numpy().astype(np.int64), camids.numpy().astype(np.int64))
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(path, pids=result.pids, camids=result.camids,
             **{f"feats_{w:g}": f for w, f in result.feats.items()})
    return result
