"""What identities and cameras look like: random body shapes, outfits and camera properties.

Colours are RGB triples in [0, 1]. Identities are drawn in outfit groups (look-alikes share a
base outfit) so that clothing colour alone does not solve the task; cameras differ by colour
cast, gain, blur, resolution, viewpoint squeeze, scale, preferred facing and background.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .params import GenerationParams

__all__ = ["Identity", "Camera", "FACINGS", "sample_identities", "sample_identity",
           "sample_cameras"]

Colour = Tuple[float, float, float]

FACINGS = ("front", "back", "left", "right")
TOP_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "logo", "twotone")
BOTTOMS = ("trousers", "trousers", "shorts", "skirt")  # trousers twice: the common case
HAIR_STYLES = ("short", "short", "long", "none")

_DARK = np.array([
    (0.08, 0.08, 0.09), (0.2, 0.2, 0.22), (0.42, 0.42, 0.45), (0.68, 0.68, 0.7),
    (0.9, 0.9, 0.88), (0.1, 0.12, 0.3), (0.26, 0.18, 0.12), (0.22, 0.32, 0.52),
    (0.6, 0.54, 0.4), (0.3, 0.33, 0.18),
])
_SKIN = np.array([(0.95, 0.8, 0.68), (0.87, 0.67, 0.52), (0.68, 0.48, 0.34), (0.45, 0.3, 0.2)])
_HAIR = np.array([(0.06, 0.05, 0.05), (0.22, 0.14, 0.08), (0.45, 0.3, 0.15),
                  (0.75, 0.62, 0.38), (0.55, 0.55, 0.55)])


@dataclass(frozen=True)
class Identity:
    """Body shape (fractions of the person's height) and outfit of one person."""

    height: float  # relative to the camera's person scale
    shoulder: float  # half shoulder width
    head: float  # head radius
    torso: float  # shoulder-to-hip length
    bulk: float  # limb thickness factor
    skin: Colour
    hair: Colour
    hair_style: str
    top: Colour
    top2: Colour  # pattern / logo colour
    pattern: str
    pattern_period: float  # stripe / check period
    long_sleeves: bool
    bottom: Colour
    bottom_style: str
    shoes: Colour
    bag: Colour | None
    bag_side: int  # +1: right hip, -1: left hip
    backpack: Colour | None
    hat: Colour | None
    gait: float  # limb swing amplitude factor


@dataclass(frozen=True)
class Camera:
    """Systematic look of one camera; ``background`` is a (h, w, 3) uint8 texture to crop from."""

    gains: Tuple[float, float, float]  # per-channel gain: colour cast times brightness
    gamma: float
    saturation: float  # 1: unchanged, < 1: washed out
    light_slope: Tuple[float, float]  # illumination gradient (x, y) across the image
    blur: float  # Gaussian radius, output pixels
    lowres: float  # resolution factor before upsampling back
    squeeze: float  # horizontal scale of the viewpoint
    scale: float  # person height / image height
    facing_probs: Tuple[float, float, float, float]  # over FACINGS
    occlusion: float  # multiplies GenerationParams.occlusion_rate
    jpeg_quality: int
    background: np.ndarray


def _clip(c) -> Colour:
    return tuple(float(v) for v in np.clip(c, 0.0, 1.0))


def _garment_colour(rng: np.random.Generator, dark_rate: float) -> Colour:
    if rng.random() < dark_rate:
        return _clip(_DARK[rng.integers(len(_DARK))] + rng.normal(0, 0.03, 3))
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.45, 0.95))
    return _clip(rgb)


def _outfit(rng: np.random.Generator, p: GenerationParams) -> dict:
    acc = p.accessory_rate
    return dict(
        hair=_clip(_HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 0.03, 3)),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        top=_garment_colour(rng, p.dark_clothes_rate),
        top2=_garment_colour(rng, p.dark_clothes_rate * 0.5),
        pattern=TOP_PATTERNS[rng.integers(len(TOP_PATTERNS))],
        pattern_period=float(rng.uniform(0.035, 0.08)),
        long_sleeves=bool(rng.random() < 0.6),
        bottom=_garment_colour(rng, min(1.0, p.dark_clothes_rate * 1.5)),
        bottom_style=BOTTOMS[rng.integers(len(BOTTOMS))],
        shoes=_garment_colour(rng, 0.8),
        bag=_garment_colour(rng, 0.6) if rng.random() < acc else None,
        bag_side=int(rng.choice([-1, 1])),
        backpack=_garment_colour(rng, 0.6) if rng.random() < acc else None,
        hat=_garment_colour(rng, 0.5) if rng.random() < acc * 0.6 else None,
    )


def _mutate(base: dict, rng: np.random.Generator, p: GenerationParams) -> dict:
    fresh = _outfit(rng, p)
    out = {}
    for key, value in base.items():
        if rng.random() < p.outfit_mutation:
            value = fresh[key]
        if isinstance(value, tuple):  # a colour: look-alike, not identical
            value = _clip(np.asarray(value) + rng.normal(0, p.outfit_colour_jitter, 3))
        out[key] = value
    return out


def sample_identity(rng: np.random.Generator, p: GenerationParams,
                    base_outfit: dict | None = None) -> Identity:
    """One random person; with ``base_outfit``, a look-alike of that outfit."""
    outfit = _mutate(base_outfit, rng, p) if base_outfit is not None else _outfit(rng, p)
    return Identity(
        height=float(rng.uniform(0.86, 1.0)),
        shoulder=float(rng.uniform(0.1, 0.145)),
        head=float(rng.uniform(0.055, 0.075)),
        torso=float(rng.uniform(0.26, 0.34)),
        bulk=float(rng.uniform(0.8, 1.3)),
        skin=_clip(_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 0.03, 3)),
        gait=float(rng.uniform(0.6, 1.2)),
        **outfit,
    )


def sample_identities(rng: np.random.Generator, p: GenerationParams, n: int) -> List[Identity]:
    """``n`` identities in look-alike groups of ``p.outfit_group_size`` (in random order)."""
    people: List[Identity] = []
    while len(people) < n:
        base = _outfit(rng, p)
        for _ in range(min(p.outfit_group_size, n - len(people))):
            people.append(sample_identity(rng, p, base if p.outfit_group_size > 1 else None))
    order = rng.permutation(n)
    return [people[i] for i in order]


def _background(rng: np.random.Generator, h: int, w: int, saturation: float,
                contrast: float) -> np.ndarray:
    """A camera's scene: wall with panels over a tiled / striped floor, mottled; (h, w, 3)."""
    wall = np.array(_garment_colour(rng, 0.7)) * 0.8 + 0.1
    floor = np.array(_DARK[rng.integers(len(_DARK))]) * 0.7 + rng.uniform(0.05, 0.25)
    img = Image.new("RGB", (w, h), tuple(int(v * 255) for v in wall))
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.3, 0.6))
    for _ in range(rng.integers(3, 9)):  # windows, doors, signs
        x0, y0 = int(rng.uniform(-0.1, 1) * w), int(rng.uniform(0, 0.9) * horizon)
        x1, y1 = x0 + int(rng.uniform(0.08, 0.4) * w), y0 + int(rng.uniform(0.1, 0.6) * horizon)
        shade = np.clip(wall * rng.uniform(0.5, 1.4) + rng.normal(0, 0.08, 3), 0, 1)
        draw.rectangle([x0, y0, x1, min(y1, horizon)], fill=tuple(int(v * 255) for v in shade))
    draw.rectangle([0, horizon, w, h], fill=tuple(int(v * 255) for v in np.clip(floor, 0, 1)))
    line = tuple(int(v * 255) for v in np.clip(floor * 0.75, 0, 1))
    period = int(rng.uniform(0.06, 0.2) * h)
    if rng.random() < 0.6:  # floor tiles
        for y in range(horizon, h, period):
            draw.line([0, y, w, y], fill=line, width=2)
        for x in range(int(rng.integers(period)), w, period):
            draw.line([x, horizon, x, h], fill=line, width=2)
    else:  # road / corridor stripes
        for x in range(int(rng.integers(period)), w, 2 * period):
            draw.rectangle([x, horizon, x + period // 3, h], fill=line)
    arr = np.asarray(img, dtype=np.float32)
    # Low-frequency mottling: stains, shadows, uneven lighting of the scene.
    coarse = rng.normal(1.0, 0.12, (6, 8)).astype(np.float32)
    mottle = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR))
    arr = arr * mottle[..., None] + rng.normal(0, 6, arr.shape).astype(np.float32)
    grey = arr.mean(axis=2, keepdims=True)
    arr = grey + saturation * (arr - grey)
    arr = 128 + contrast * (arr - 128)
    return np.clip(arr, 0, 255).astype(np.uint8)


def sample_cameras(rng: np.random.Generator, p: GenerationParams,
                   background_size: Tuple[int, int]) -> List[Camera]:
    """``p.num_cameras`` cameras; ``background_size`` (h, w) is the texture size in pixels."""
    cams = []
    for _ in range(p.num_cameras):
        cast = np.exp(rng.normal(0, p.camera_cast, 3))
        cast /= np.exp(np.log(cast).mean())  # a hue cast, brightness set separately
        gain = rng.uniform(*p.camera_brightness)
        pref = rng.dirichlet(np.full(4, 0.5))
        facing = (1 - p.camera_facing_bias) * np.full(4, 0.25) + p.camera_facing_bias * pref
        cams.append(Camera(
            gains=tuple(float(v) for v in cast * gain),
            gamma=float(rng.uniform(0.8, 1.25)),
            saturation=float(rng.uniform(0.65, 1.1)),
            light_slope=(float(rng.normal(0, 0.15)), float(rng.normal(0, 0.15))),
            blur=float(rng.uniform(*p.camera_blur)),
            lowres=float(rng.uniform(*p.camera_lowres)),
            squeeze=float(np.exp(rng.uniform(-1, 1) * np.log1p(p.camera_squeeze))),
            scale=float(rng.uniform(*p.camera_scale)),
            facing_probs=tuple(float(v) for v in facing / facing.sum()),
            occlusion=float(rng.uniform(0.4, 1.6)),
            jpeg_quality=int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)),
            background=_background(rng, *background_size, p.background_saturation,
                                   p.background_contrast),
        ))
    return cams


def distractor_identity(rng: np.random.Generator, p: GenerationParams) -> Identity:
    """A passer-by (occluder or pid-0 distractor), independent of every dataset identity."""
    return replace(sample_identity(rng, p), bag=None, backpack=None)
