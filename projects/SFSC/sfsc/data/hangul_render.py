"""Rendering one font-rendered ReID image: a character in one font, ink on paper, then the
camera's imaging condition.

The glyph is drawn on a canvas ``SUPERSAMPLE`` times the output size: its ink box scaled to a
random share of the image, thickened by a random stroke, shifted and rotated a little, in a
random ink and paper colour of enough contrast under a soft illumination gradient; then resized
to the output size. A degraded camera then loses resolution, blurs, casts its colour and adds
noise; every camera saves JPEG at its own quality.
"""
from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .hangul_fonts import FontFile
from .hangul_params import GlyphParams

__all__ = ["SUPERSAMPLE", "GlyphCamera", "sample_glyph_cameras", "render_glyph"]

SUPERSAMPLE = 2
_MEASURE_SIZE = 100  # font size (pixels) at which a glyph's ink box is measured


@dataclass(frozen=True)
class GlyphCamera:
    """A camera: the style family its fonts come from, its imaging condition, its look."""

    style: str
    condition: str  # "clean" | "degraded"
    gains: Tuple[float, float, float]  # per-channel colour cast (1, 1, 1: none)
    jpeg_quality: int


def sample_glyph_cameras(rng: np.random.Generator, p: GlyphParams) -> List[GlyphCamera]:
    """The dataset's cameras, in Market-1501 order c1, c2, ... (see ``GlyphParams.camera``)."""
    cameras = []
    for i in range(p.num_cameras):
        style, condition = p.camera(i)
        if condition == "clean":
            gains, quality = np.ones(3), rng.integers(p.clean_jpeg[0], p.clean_jpeg[1] + 1)
        else:
            gains = np.exp(rng.normal(0.0, p.degraded_cast, 3))
            gains, quality = gains / gains.mean(), rng.integers(p.degraded_jpeg[0],
                                                                p.degraded_jpeg[1] + 1)
        cameras.append(GlyphCamera(style, condition, tuple(round(float(g), 6) for g in gains),
                                   int(quality)))
    return cameras


@functools.lru_cache(maxsize=4096)
def _font(path: str, sha256: str, size: int) -> ImageFont.FreeTypeFont:
    # Keyed by content too: a font file replaced under the same name is another font.
    return ImageFont.truetype(path, size)


def _colours(rng: np.random.Generator, p: GlyphParams) -> Tuple[np.ndarray, np.ndarray]:
    """(ink, paper) RGB in [0, 1] whose HLS lightness differs by at least ``min_contrast``."""
    light_ink = rng.random() < p.light_ink_rate
    paper_l = rng.uniform(0.0, 1.0 - p.min_contrast) if light_ink \
        else rng.uniform(p.min_contrast, 1.0)
    ink_l = rng.uniform(paper_l + p.min_contrast, 1.0) if light_ink \
        else rng.uniform(0.0, paper_l - p.min_contrast)

    def colour(lightness: float) -> np.ndarray:
        return np.array(colorsys.hls_to_rgb(rng.random(), lightness,
                                            rng.uniform(0.0, p.saturation)))

    return colour(ink_l), colour(paper_l)


def _glyph_mask(character: str, font_file: FontFile, p: GlyphParams, rng: np.random.Generator,
                size: Tuple[int, int]) -> Image.Image:
    """The glyph's coverage ('L', canvas ``size`` (w, h)): scaled, thickened, shifted, rotated."""
    w, h = size
    path, sha256 = font_file.path, font_file.sha256
    box = _font(path, sha256, _MEASURE_SIZE).getbbox(character)
    side = max(box[2] - box[0], box[3] - box[1], 1)
    target = rng.uniform(*p.glyph_size) * min(w, h)
    stroke = int(round(rng.uniform(*p.stroke) * target))
    # The font size whose ink box (with the stroke) spans ``target`` pixels.
    font = _font(path, sha256, max(4, int(round(_MEASURE_SIZE * (target - 2 * stroke) / side))))
    x0, y0, x1, y1 = font.getbbox(character, stroke_width=stroke)
    cx = w / 2 + rng.uniform(-p.offset, p.offset) * w
    cy = h / 2 + rng.uniform(-p.offset, p.offset) * h
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).text((cx - (x0 + x1) / 2, cy - (y0 + y1) / 2), character, fill=255,
                              font=font, stroke_width=stroke, stroke_fill=255)
    return mask.rotate(rng.uniform(-p.rotation, p.rotation), resample=Image.BICUBIC,
                       center=(cx, cy))


def render_glyph(character: str, font: FontFile, camera: GlyphCamera, p: GlyphParams,
                 rng: np.random.Generator) -> Image.Image:
    """One (H, W) RGB image of ``character`` drawn with ``font``."""
    h, w = p.image_size
    ch, cw = h * SUPERSAMPLE, w * SUPERSAMPLE
    alpha = np.asarray(_glyph_mask(character, font, p, rng, (cw, ch)),
                       dtype=np.float32)[..., None] / 255.0
    ink, paper = _colours(rng, p)
    angle, amount = rng.uniform(0, 2 * np.pi), rng.uniform(0, p.shading)
    ramp = np.cos(angle) * np.linspace(-0.5, 0.5, cw)[None, :] \
        + np.sin(angle) * np.linspace(-0.5, 0.5, ch)[:, None]
    light = (1.0 + amount * ramp).astype(np.float32)[..., None]
    x = (paper * (1 - alpha) + ink * alpha) * light
    img = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
    img = img.resize((w, h), Image.LANCZOS)

    if camera.condition == "clean":
        noise = p.clean_noise
    else:
        factor = rng.uniform(*p.degraded_lowres)
        small = (max(8, int(round(w * factor))), max(8, int(round(h * factor))))
        img = img.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*p.degraded_blur)))
        noise = rng.uniform(*p.degraded_noise)
    x = np.asarray(img, dtype=np.float32) * np.asarray(camera.gains, dtype=np.float32)
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
