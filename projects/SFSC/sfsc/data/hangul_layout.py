"""The layout of a font-rendered ReID dataset: which character is which identity, which camera
sees it how often, and in which split, with Market-1501 file names.

:func:`plan_glyph_dataset` decides everything but the pixels. Every image carries its own
rendering seed, so images can be rendered in any order with identical bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from .hangul_params import GlyphParams
from .layout import GALLERY_DIR, QUERY_DIR, SUBSETS, TRAIN_DIR, market_name

__all__ = ["GlyphImage", "GlyphPlan", "plan_glyph_dataset"]

_MAX_FRAME = 150000


@dataclass(frozen=True)
class GlyphImage:
    """One image to render: where it goes, which character (pid 0: a distractor), which camera."""

    subset: str
    pid: int
    camera: int  # 1-based
    seq: int
    frame: int
    character: int  # code point
    seed: int  # rendering seed of this image

    @property
    def filename(self) -> str:
        """Market-1501 name, e.g. ``0042_c3s2_004711_01.jpg``."""
        return market_name(self.pid, self.camera, self.seq, self.frame, 1)


@dataclass
class GlyphPlan:
    """Everything :func:`sfsc.data.hangul.generate_hangul_reid` renders, but the fonts."""

    params: GlyphParams
    identities: Dict[int, int]  # pid -> code point
    train_pids: List[int]
    test_pids: List[int]
    images: List[GlyphImage]

    def counts(self) -> Dict[str, int]:
        """Number of images per subset folder."""
        return {s: sum(r.subset == s for r in self.images) for s in SUBSETS}


def _frames(rng: np.random.Generator, n: int) -> List[int]:
    """``n`` distinct frame numbers, ascending: one camera's sightings of one identity."""
    return sorted(int(f) for f in rng.choice(np.arange(1, _MAX_FRAME), n, replace=False))


def _identity_images(rng: np.random.Generator, p: GlyphParams, pid: int, character: int,
                     is_test: bool) -> List[GlyphImage]:
    k = int(rng.integers(p.cameras_per_id[0], p.cameras_per_id[1] + 1))
    cameras = sorted(int(c) + 1 for c in rng.choice(p.num_cameras, k, replace=False))
    if is_test:
        per_camera = [int(rng.integers(p.gallery_per_camera[0], p.gallery_per_camera[1] + 1))
                      for _ in cameras]
        query_cameras = {int(c) for c in rng.choice(cameras, p.queries_per_id, replace=False)}
    else:  # every camera at least once, the rest spread at random
        n = int(rng.integers(p.train_images_per_id[0], p.train_images_per_id[1] + 1))
        per_camera = [1 + int(m) for m in rng.multinomial(n - k, np.full(k, 1.0 / k))]
        query_cameras = set()
    images: List[GlyphImage] = []
    for cam, count in zip(cameras, per_camera):
        seq = int(rng.integers(1, 7))  # Market-1501 numbers each camera's sequences s1..s6
        query = cam in query_cameras
        subsets = [QUERY_DIR] * query + [GALLERY_DIR if is_test else TRAIN_DIR] * count
        for subset, frame in zip(subsets, _frames(rng, len(subsets))):
            images.append(GlyphImage(subset, pid, cam, seq, frame, character,
                                     int(rng.integers(2 ** 62))))
    return images


def _distractors(rng: np.random.Generator, pick: np.random.Generator, p: GlyphParams,
                 pool: Sequence[int], taken: set) -> List[GlyphImage]:
    """Gallery images of pid 0: characters of ``pool`` (no identity's, in ``pick``'s order),
    one each, starting over when ``pool`` runs out (a count above its size repeats characters,
    each time in another camera and frame)."""
    if p.num_distractors and not len(pool):
        raise ValueError("distractors need characters that are no identity's: the fonts draw "
                         "too few characters")
    order = pick.permutation(len(pool))
    out: List[GlyphImage] = []
    while len(out) < p.num_distractors:
        character = int(pool[order[len(out) % len(pool)]])
        rec = GlyphImage(GALLERY_DIR, 0, int(rng.integers(1, p.num_cameras + 1)),
                         int(rng.integers(1, 7)), int(rng.integers(1, _MAX_FRAME)), character,
                         int(rng.integers(2 ** 62)))
        if rec.filename not in taken:
            taken.add(rec.filename)
            out.append(rec)
    return out


def plan_glyph_dataset(p: GlyphParams, characters: Sequence[int], seed: int) -> GlyphPlan:
    """The complete, deterministic layout of the dataset of ``(p, seed)`` whose identities are
    drawn from ``characters`` (the code points every font draws)."""
    p.validate()
    n = p.num_train_ids + p.num_test_ids
    if len(characters) < n:
        raise ValueError(f"{n} identities need as many characters; the fonts draw "
                         f"{len(characters)} of the requested ones")
    # Two streams: the layout (and so the image counts and names) does not depend on how many
    # characters the installed fonts draw; only which character each identity is does.
    rng, pick = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    chosen = pick.permutation(len(characters))
    identity_chars = [int(characters[i]) for i in chosen[:n]]
    pool = [int(characters[i]) for i in chosen[n:]]
    # Market-like sparse pid numbers, train and test interleaved but disjoint.
    pids = sorted(int(x) for x in rng.choice(np.arange(1, 1502), n, replace=False))
    is_test = np.zeros(n, bool)
    is_test[rng.choice(n, p.num_test_ids, replace=False)] = True
    images: List[GlyphImage] = []
    for pid, character, test in zip(pids, identity_chars, is_test):
        images += _identity_images(rng, p, pid, character, bool(test))
    names = {r.filename for r in images}
    if len(names) != len(images):
        raise AssertionError("glyph layout produced duplicate file names")
    images += _distractors(rng, pick, p, pool, names)
    return GlyphPlan(params=p, identities=dict(zip(pids, identity_chars)),
                     train_pids=[pid for pid, t in zip(pids, is_test) if not t],
                     test_pids=[pid for pid, t in zip(pids, is_test) if t], images=images)
