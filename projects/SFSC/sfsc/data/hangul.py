"""Writing a font-rendered ReID dataset (Hangul syllables in Debian's Korean fonts) to disk in
Market-1501's layout, once, race-free (:func:`sfsc.data.generated.ensure_generated`).

The manifest's header (generator, version, seed, parameters, every font file with its SHA-256)
identifies the images: a folder is reused while it matches, and run records carry it. Which
characters every font draws follows from the fonts, so the header need not list them; the
manifest does (``num_characters``, and each identity's character).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Sequence

import numpy as np
from PIL import Image, features

from .generated import ensure_generated, write_manifest
from .hangul_fonts import FontFile, drawn_characters
from .hangul_layout import GlyphPlan, plan_glyph_dataset
from .hangul_params import GlyphParams
from .hangul_render import GlyphCamera, render_glyph, sample_glyph_cameras
from .layout import SUBSETS

__all__ = ["GENERATOR_VERSION", "hangul_header", "generate_hangul_reid", "ensure_hangul_reid"]

logger = logging.getLogger(__name__)

#: Bump whenever rendering or layout changes, so that old folders are regenerated.
GENERATOR_VERSION = 1
_PROGRESS_EVERY = 5000  # images


def hangul_header(p: GlyphParams, seed: int, fonts: Sequence[FontFile]) -> Dict[str, Any]:
    """What identifies a generated dataset: generator, version, seed, parameters, fonts."""
    return {"generator": "sfsc.data.hangul", "version": GENERATOR_VERSION, "seed": int(seed),
            "params": p.to_dict(), "fonts": [f.entry() for f in fonts]}


def _render(plan: GlyphPlan, cameras: Sequence[GlyphCamera], fonts: Sequence[FontFile],
            folder: str) -> None:
    for s in SUBSETS:
        os.makedirs(os.path.join(folder, s), exist_ok=True)
    by_style: Dict[str, List[FontFile]] = {}
    for font in fonts:
        by_style.setdefault(font.style, []).append(font)
    for i, rec in enumerate(plan.images):
        rng = np.random.default_rng(rec.seed)
        cam = cameras[rec.camera - 1]
        family = by_style[cam.style]
        img = render_glyph(chr(rec.character), family[rng.integers(len(family))], cam,
                           plan.params, rng)
        img.save(os.path.join(folder, rec.subset, rec.filename), quality=cam.jpeg_quality)
        if (i + 1) % _PROGRESS_EVERY == 0:
            logger.info(f"  {i + 1} / {len(plan.images)} images")


def generate_hangul_reid(folder: str, p: GlyphParams, seed: int,
                         fonts: Sequence[FontFile]) -> Dict[str, Any]:
    """Write the dataset of ``(p, seed)`` drawn with ``fonts`` into ``folder`` (not atomic);
    return its manifest."""
    characters = drawn_characters(fonts, p.character_list())
    plan = plan_glyph_dataset(p, characters, seed)
    # Cameras from their own stream: the layout's draws stay those of the seed alone.
    cameras = sample_glyph_cameras(np.random.default_rng([seed, 1]), p)
    _render(plan, cameras, fonts, folder)
    manifest = dict(
        hangul_header(p, seed, fonts), counts=plan.counts(),
        num_ids={"train": len(plan.train_pids), "test": len(plan.test_pids)},
        num_characters=len(characters),
        identities={f"{pid:04d}": chr(c) for pid, c in sorted(plan.identities.items())},
        cameras=[{"camera": f"c{i + 1}", "style": c.style, "condition": c.condition,
                  "gains": list(c.gains), "jpeg_quality": c.jpeg_quality}
                 for i, c in enumerate(cameras)],
        # Rasterisation and JPEG coding may differ between library versions: for diagnosis.
        renderer={"pillow": Image.__version__, "freetype": features.version("freetype2"),
                  "jpeg": features.version("jpg")})
    write_manifest(folder, manifest)
    return manifest


def ensure_hangul_reid(folder: str, p: GlyphParams, seed: int, fonts: Sequence[FontFile],
                       name: str = "HangulReID") -> str:
    """Generate the dataset of ``(p, seed, fonts)`` at ``folder`` unless it is there; return
    the path."""
    return ensure_generated(
        folder, hangul_header(p, seed, fonts),
        lambda tmp: generate_hangul_reid(tmp, p, seed, fonts), name,
        f"seed {seed}: {p.num_train_ids} train / {p.num_test_ids} test identities, "
        f"{p.num_cameras} cameras, {len(fonts)} fonts")
