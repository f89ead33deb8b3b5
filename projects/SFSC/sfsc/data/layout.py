"""The layout of a synthetic ReID dataset: who is seen by which camera, when, and in which split.

:func:`plan_dataset` decides everything but the pixels: identities and cameras, each
identity's tracklets (sequences of frames in one camera), the train / query / gallery split
and Market-1501 file names ``PPPP_cCsS_FFFFFF_NN.jpg``. Every image carries its own rendering
seed, so images can be rendered in any order (or in parallel) with identical bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from .appearance import FACINGS, Camera, Identity, sample_cameras, sample_identities
from .params import GenerationParams
from .render import Pose, background_size

__all__ = ["TRAIN_DIR", "QUERY_DIR", "GALLERY_DIR", "SUBSETS", "market_name", "ImageRecord",
           "DatasetPlan", "plan_dataset"]

TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
SUBSETS = (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)
_MAX_SEQ = 6  # Market-1501 numbers the sequences of each camera s1..s6


def market_name(pid: int, camera: int, seq: int, frame: int, box: int) -> str:
    """Market-1501's file name, e.g. ``0042_c3s2_004711_01.jpg`` (camera 1-based)."""
    return f"{pid:04d}_c{camera}s{seq}_{frame:06d}_{box:02d}.jpg"


@dataclass(frozen=True)
class ImageRecord:
    """One image to render: where it goes, whom it shows (``identity`` -1: a distractor), how."""

    subset: str
    pid: int  # 0: distractor
    camera: int  # 1-based
    seq: int
    frame: int
    box: int
    identity: int  # index into DatasetPlan.identities; -1 for distractors
    pose: Pose
    seed: int  # rendering seed of this image
    empty: bool = False  # distractor without a person (a false detection)

    @property
    def filename(self) -> str:
        """Market-1501 name, e.g. ``0042_c3s2_004711_01.jpg``."""
        return market_name(self.pid, self.camera, self.seq, self.frame, self.box)


@dataclass
class DatasetPlan:
    """Everything :func:`sfsc.data.synthetic.render_plan` needs to write the dataset."""

    params: GenerationParams
    identities: List[Identity]
    cameras: List[Camera]
    train_pids: List[int]
    test_pids: List[int]
    images: List[ImageRecord]

    def counts(self) -> Dict[str, int]:
        """Number of images per subset folder."""
        return {s: sum(r.subset == s for r in self.images) for s in SUBSETS}


def _split(rng: np.random.Generator, total: int, parts: int, minimum: int) -> List[int]:
    """``total`` items into ``parts`` random-size parts of at least ``minimum``."""
    rest = total - parts * minimum
    return [minimum + int(k) for k in rng.multinomial(rest, np.full(parts, 1.0 / parts))]


def _tracklet(rng: np.random.Generator, p: GenerationParams, cam: Camera, n: int,
              pid: int, cam_id: int, seq: int, identity: int, subset: str) -> List[ImageRecord]:
    """``n`` frames of one walk past a camera: facing fixed, position drifting, gait cycling."""
    facing = FACINGS[rng.choice(len(FACINGS), p=cam.facing_probs)]
    dx, dy = rng.normal(0, 0.06), rng.normal(0, 0.015)
    drift = rng.normal(0, 0.015) * (1 if facing in ("left", "right") else 0.3)
    scale = math.exp(rng.normal(0, 0.05))
    phase, dphase = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 1.5)
    frame, step = int(rng.integers(1, 150000)), int(rng.integers(4, 30))
    j, bj = p.pose_jitter, p.box_jitter
    out = []
    for k in range(n):
        pose = Pose(
            facing=facing,
            phase=phase + k * dphase + rng.normal(0, 0.3 * j),
            dx=dx + k * drift + rng.normal(0, 0.5 * bj),
            dy=dy + rng.normal(0, 0.25 * bj),
            scale=scale * math.exp(rng.normal(0, 0.5 * bj)),
            lean=rng.normal(0, 0.012 * j),
        )
        out.append(ImageRecord(subset, pid, cam_id, seq, frame + k * step, 1, identity, pose,
                               int(rng.integers(2 ** 62))))
    return out


def _identity_images(rng: np.random.Generator, p: GenerationParams, cams: List[Camera], pid: int,
                     identity: int, is_test: bool) -> List[ImageRecord]:
    n = int(rng.integers(p.images_per_id[0], p.images_per_id[1] + 1))
    k = int(rng.integers(p.cameras_per_id[0], p.cameras_per_id[1] + 1))
    chosen = sorted(int(c) for c in rng.choice(p.num_cameras, k, replace=False))
    per_cam = _split(rng, n, k, p.queries_per_camera + 1 if is_test else 2)
    subset = GALLERY_DIR if is_test else TRAIN_DIR
    images: List[ImageRecord] = []
    for c, count in zip(chosen, per_cam):
        t = int(rng.integers(p.tracklets_per_camera[0], p.tracklets_per_camera[1] + 1))
        t = max(1, min(t, count, _MAX_SEQ))
        seqs = sorted(int(s) + 1 for s in rng.choice(_MAX_SEQ, t, replace=False))
        cam_images: List[ImageRecord] = []
        for seq, m in zip(seqs, _split(rng, count, t, 1)):
            cam_images += _tracklet(rng, p, cams[c], m, pid, c + 1, seq, identity, subset)
        if is_test:  # Market-style queries: a few images of each camera the person walks past
            for q in rng.choice(len(cam_images), p.queries_per_camera, replace=False):
                r = cam_images[q]
                cam_images[q] = ImageRecord(QUERY_DIR, r.pid, r.camera, r.seq, r.frame, r.box,
                                            r.identity, r.pose, r.seed)
        images += cam_images
    return images


def _distractors(rng: np.random.Generator, p: GenerationParams, taken: set) -> List[ImageRecord]:
    out = []
    while len(out) < p.num_distractors:
        cam, seq, frame = int(rng.integers(1, p.num_cameras + 1)), int(rng.integers(1, 7)), \
            int(rng.integers(1, 150000))
        # Badly placed boxes: a passer-by far off centre or cut by the frame, or nobody at all.
        pose = Pose(FACINGS[rng.integers(4)], rng.uniform(0, 2 * math.pi),
                    rng.choice([-1, 1]) * rng.uniform(0.2, 0.5), rng.uniform(-0.1, 0.3),
                    rng.uniform(0.8, 1.6))
        rec = ImageRecord(GALLERY_DIR, 0, cam, seq, frame, 1, -1, pose,
                          int(rng.integers(2 ** 62)), empty=bool(rng.random() < 0.4))
        if rec.filename not in taken:
            taken.add(rec.filename)
            out.append(rec)
    return out


def plan_dataset(p: GenerationParams, seed: int) -> DatasetPlan:
    """The complete, deterministic layout of the dataset generated from ``(p, seed)``."""
    p.validate()
    rng = np.random.default_rng(seed)
    n = p.num_train_ids + p.num_test_ids
    identities = sample_identities(rng, p, n)
    cameras = sample_cameras(rng, p, background_size(p))
    # Market-like sparse pid numbers, train and test interleaved but disjoint.
    pids = sorted(int(x) for x in rng.choice(np.arange(1, 1502), n, replace=False))
    is_test = np.zeros(n, bool)
    is_test[rng.choice(n, p.num_test_ids, replace=False)] = True
    images: List[ImageRecord] = []
    for i, pid in enumerate(pids):
        images += _identity_images(rng, p, cameras, pid, i, bool(is_test[i]))
    names = {r.filename for r in images}
    if len(names) != len(images):
        raise AssertionError("synthetic layout produced duplicate file names")
    images += _distractors(rng, p, names)
    return DatasetPlan(
        params=p, identities=identities, cameras=cameras,
        train_pids=[pid for pid, t in zip(pids, is_test) if not t],
        test_pids=[pid for pid, t in zip(pids, is_test) if t], images=images)
