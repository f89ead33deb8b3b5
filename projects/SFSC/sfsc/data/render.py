"""Rendering one synthetic ReID image: a person drawn on a camera's scene, then the camera's look.

Drawing happens on a canvas ``SUPERSAMPLE`` times the output size (anti-aliasing) whose width
is divided by the camera's squeeze (viewpoint), then resized to the output size; resolution
loss, blur, colour cast, illumination gradient, gamma and noise follow in that order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .appearance import Camera, Identity, distractor_identity
from .params import GenerationParams

__all__ = ["Pose", "render_image", "SUPERSAMPLE", "background_size"]

SUPERSAMPLE = 2
RGB = Tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    """Where and how a person stands in one image (offsets are fractions of the image size)."""

    facing: str  # one of appearance.FACINGS
    phase: float  # walking cycle, radians
    dx: float  # horizontal offset of the body axis, fraction of the width
    dy: float  # vertical offset of the feet, fraction of the height
    scale: float  # multiplies the camera's person scale
    lean: float = 0.0  # torso lean, fraction of the person's height


def background_size(p: GenerationParams) -> Tuple[int, int]:
    """(h, w) of camera background textures: room for random crops of any squeezed canvas."""
    h, w = p.image_size
    return int(h * SUPERSAMPLE * 1.3), int(w * SUPERSAMPLE * (1 + p.camera_squeeze) * 1.6)


def _rgb(c: Sequence[float], k: float = 1.0) -> RGB:
    return tuple(int(max(0.0, min(1.0, v * k)) * 255) for v in c)


def _limb(draw: ImageDraw.ImageDraw, a, b, width: float, fill: RGB) -> None:
    r = width / 2
    draw.line([a, b], fill=fill, width=max(1, int(round(width))))
    for x, y in (a, b):  # round joints
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _pattern(person: Identity, box: Tuple[int, int, int, int], y0: float, y1: float,
             unit: float) -> Image.Image:
    """The top's fabric over canvas region ``box`` (x0, y0, x1, y1); torso from y0 to y1."""
    bx0, by0, bx1, by1 = box
    size = (bx1 - bx0, by1 - by0)
    c1, c2 = np.array(_rgb(person.top), np.uint8), np.array(_rgb(person.top2), np.uint8)
    kind = person.pattern
    if kind in ("solid", "logo"):  # a logo is drawn on top
        return Image.new("RGB", size, tuple(int(v) for v in c1))
    period = max(2.0, person.pattern_period * unit)
    ys = np.arange(by0, by1)[:, None]
    rows = np.floor((ys - y0) / period) % 2 == 1
    cols = np.floor(np.arange(bx0, bx1)[None, :] / period) % 2 == 1
    if kind == "hstripes":
        sel = np.broadcast_to(rows, (size[1], size[0]))
    elif kind == "vstripes":
        sel = np.broadcast_to(cols, (size[1], size[0]))
    elif kind == "checks":
        sel = rows ^ cols
    else:  # twotone
        sel = np.broadcast_to(ys > (y0 + y1) / 2, (size[1], size[0]))
    return Image.fromarray(np.where(sel[..., None], c2, c1))


def _draw_person(img: Image.Image, person: Identity, pose: Pose, cx: float, feet: float,
                 u: float, jitter: float) -> None:
    """Draw ``person`` with feet centre at (cx, feet), height ``u`` pixels, onto ``img``."""
    draw = ImageDraw.Draw(img)
    side = pose.facing in ("left", "right")
    sgn = -1.0 if pose.facing == "left" else 1.0
    top = feet - u
    r = person.head * u
    head_y = top + r
    shoulder_y = top + 2 * r + 0.015 * u
    hip_y = shoulder_y + person.torso * u
    sw = person.shoulder * u * (0.6 if side else 1.0)
    hw = sw * (0.8 if side else 0.85)
    lean = pose.lean * u * sgn
    aw, lw = 0.045 * person.bulk * u, 0.06 * person.bulk * u
    swing = math.sin(pose.phase) * person.gait * jitter
    skin, top_c, bottom = _rgb(person.skin), _rgb(person.top), _rgb(person.bottom)
    knee_y = (hip_y + feet) / 2

    # Legs and shoes (far leg first and darker in side view).
    if side:
        feet_x = [cx - sgn * 0.12 * u * swing, cx + sgn * 0.12 * u * swing]
        hips_x = [cx, cx]
    else:
        feet_x = [cx - hw * 0.6, cx + hw * 0.6]
        hips_x = [cx - hw * 0.5, cx + hw * 0.5]
    for i in range(2):
        shade = 0.8 if side and i == 0 else 1.0
        lift = max(0.0, (1 if i else -1) * swing) * 0.025 * u
        foot = (feet_x[i], feet - lift - 0.015 * u)
        knee = ((hips_x[i] + foot[0]) / 2, knee_y)
        _limb(draw, (hips_x[i], hip_y), foot, lw, _rgb(person.skin, shade))
        if person.bottom_style == "trousers":
            _limb(draw, (hips_x[i], hip_y), foot, lw * 1.1, _rgb(person.bottom, shade))
        elif person.bottom_style == "shorts":
            _limb(draw, (hips_x[i], hip_y), knee, lw * 1.2, _rgb(person.bottom, shade))
        toe = foot[0] + (sgn * 0.035 * u if side else 0)
        draw.ellipse([min(foot[0], toe) - lw * 0.6, foot[1] - 0.015 * u,
                      max(foot[0], toe) + lw * 0.6, foot[1] + 0.02 * u],
                     fill=_rgb(person.shoes, shade))
    if person.bottom_style == "skirt":
        draw.polygon([(cx + lean - hw, hip_y - 0.02 * u), (cx + lean + hw, hip_y - 0.02 * u),
                      (cx + hw * 1.5, knee_y + 0.03 * u), (cx - hw * 1.5, knee_y + 0.03 * u)],
                     fill=bottom)

    # Backpack behind the torso (side and front views: only its edge / straps show later).
    if person.backpack is not None and side:
        bx = cx + lean - sgn * sw
        draw.rectangle([min(bx, bx - sgn * 0.09 * u), shoulder_y + 0.02 * u,
                        max(bx, bx - sgn * 0.09 * u), shoulder_y + 0.7 * person.torso * u],
                       fill=_rgb(person.backpack))

    # Far arm (side view), torso with its pattern, then near arms.
    hand_y = hip_y + 0.02 * u
    arm_c = top_c if person.long_sleeves else skin
    if side:
        _limb(draw, (cx + lean, shoulder_y + aw / 2), (cx + sgn * 0.1 * u * swing, hand_y), aw,
              _rgb(person.top if person.long_sleeves else person.skin, 0.8))
    torso = [(cx + lean - sw, shoulder_y), (cx + lean + sw, shoulder_y),
             (cx + hw, hip_y + 0.02 * u), (cx - hw, hip_y + 0.02 * u)]
    # The fabric is pasted through a torso-shaped mask over the torso's bounding box only.
    box = (int(min(x for x, _ in torso)), int(shoulder_y), int(max(x for x, _ in torso)) + 2,
           int(hip_y + 0.02 * u) + 2)
    mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(mask).polygon([(x - box[0], y - box[1]) for x, y in torso], fill=255)
    img.paste(_pattern(person, box, shoulder_y, hip_y, u), box[:2], mask)
    if person.pattern == "logo" and pose.facing == "front":
        s = 0.045 * u
        ly = shoulder_y + 0.35 * person.torso * u
        draw.regular_polygon((cx + lean, ly, s), 3 + int(person.pattern_period * 100) % 3,
                             fill=_rgb(person.top2))
    if person.backpack is not None and pose.facing == "back":
        draw.rounded_rectangle([cx + lean - sw * 0.7, shoulder_y + 0.02 * u, cx + lean + sw * 0.7,
                                shoulder_y + 0.75 * person.torso * u], radius=0.02 * u,
                               fill=_rgb(person.backpack))
    elif person.backpack is not None and pose.facing == "front":
        for s in (-1, 1):
            _limb(draw, (cx + lean + s * sw * 0.55, shoulder_y),
                  (cx + lean + s * sw * 0.5, shoulder_y + 0.5 * person.torso * u), aw * 0.35,
                  _rgb(person.backpack))
    if side:
        _limb(draw, (cx + lean, shoulder_y + aw / 2), (cx - sgn * 0.1 * u * swing, hand_y), aw,
              arm_c)
        if not person.long_sleeves:
            _limb(draw, (cx + lean, shoulder_y + aw / 2),
                  (cx + lean - sgn * 0.05 * u * swing, shoulder_y + 0.1 * u), aw * 1.1, top_c)
    else:
        for s in (-1, 1):
            start = (cx + lean + s * (sw - aw * 0.4), shoulder_y + aw / 2)
            hand = (cx + s * (sw + 0.015 * u), hand_y + s * 0.015 * u * swing)
            _limb(draw, start, hand, aw, arm_c)
            if not person.long_sleeves:
                mid = ((start[0] + hand[0]) / 2, (start[1] + hand[1]) / 2 - 0.04 * u)
                _limb(draw, start, mid, aw * 1.1, top_c)

    # Shoulder bag: strap across the chest / back, bag at the hip.
    if person.bag is not None:
        bag_side = person.bag_side * (-1 if pose.facing == "back" else 1)
        bx = cx + (0 if side else bag_side * hw * 1.1)
        _limb(draw, (cx + lean - bag_side * sw * 0.8, shoulder_y), (bx, hip_y), aw * 0.3,
              _rgb(person.bag, 0.7))
        draw.rectangle([bx - 0.045 * u, hip_y - 0.03 * u, bx + 0.045 * u, hip_y + 0.05 * u],
                       fill=_rgb(person.bag))

    # Head, hair, hat.
    hx = cx + lean + (sgn * 0.01 * u if side else 0)
    hair = _rgb(person.hair)
    if person.hair_style == "long" and pose.facing != "back":
        back = hx - sgn * r * 0.5 if side else hx
        draw.rectangle([back - r * 1.05, head_y, back + r * 1.05, shoulder_y + 0.07 * u],
                       fill=hair)
    draw.ellipse([hx - r * 0.85, head_y - r, hx + r * 0.85, head_y + r], fill=skin)
    if person.hair_style != "none":
        if pose.facing == "back":
            bottom_y = shoulder_y + 0.07 * u if person.hair_style == "long" else head_y + r * 0.8
            draw.rounded_rectangle([hx - r * 0.9, head_y - r * 1.05, hx + r * 0.9, bottom_y],
                                   radius=r * 0.8, fill=hair)
        elif side:
            start = 135 if sgn > 0 else 195  # PIL angles: clockwise from 3 o'clock
            draw.chord([hx - r * 0.9, head_y - r * 1.05, hx + r * 0.9, head_y + r * 0.95],
                       start, start + 210, fill=hair)
        else:
            draw.chord([hx - r * 0.9, head_y - r * 1.08, hx + r * 0.9, head_y + r * 0.5],
                       180, 360, fill=hair)
    if person.hat is not None:
        hat = _rgb(person.hat)
        draw.chord([hx - r * 0.95, head_y - r * 1.2, hx + r * 0.95, head_y + r * 0.2], 180, 360,
                   fill=hat)
        brim = r * (1.1 if side else 0.3)
        x0 = hx if side and sgn > 0 else hx - brim - r * 0.5
        draw.rectangle([x0, head_y - r * 0.5, x0 + brim + r * 0.5, head_y - r * 0.3], fill=hat)


def _occlude(img: Image.Image, rng: np.random.Generator, p: GenerationParams, u: float) -> None:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    kind = rng.integers(3)
    colour = _rgb(np.clip(rng.uniform(0.05, 0.8) + rng.normal(0, 0.1, 3), 0, 1))
    if kind == 0:  # pole, tree, sign post
        x = rng.uniform(0.0, 1.0) * w
        bw = rng.uniform(0.1, 0.25) * w
        draw.rectangle([x - bw / 2, 0, x + bw / 2, h], fill=colour)
    elif kind == 1:  # car, bench, bushes in front of the legs
        y = rng.uniform(0.55, 0.8) * h
        x0 = rng.uniform(-0.5, 0.4) * w
        draw.rounded_rectangle([x0, y, x0 + rng.uniform(0.6, 1.2) * w, h + 10],
                               radius=0.03 * h, fill=colour)
    else:  # another pedestrian walking past, half out of the frame
        other = distractor_identity(rng, p)
        facing = ("front", "back", "left", "right")[rng.integers(4)]
        pose = Pose(facing, rng.uniform(0, 2 * math.pi), 0, 0, 1)
        cx = w / 2 + rng.choice([-1, 1]) * rng.uniform(0.45, 0.65) * w
        _draw_person(img, other, pose, cx, h * rng.uniform(0.95, 1.05), u * rng.uniform(0.9, 1.1),
                     1.0)


def render_image(person: Identity | None, camera: Camera, pose: Pose, p: GenerationParams,
                 rng: np.random.Generator) -> Image.Image:
    """One (H, W) RGB image of ``person`` (None: empty scene) seen by ``camera``."""
    h, w = p.image_size
    ch, cw = h * SUPERSAMPLE, int(round(w * SUPERSAMPLE / camera.squeeze))
    bh, bw = camera.background.shape[:2]
    y0, x0 = rng.integers(0, bh - ch + 1), rng.integers(0, bw - cw + 1)
    img = Image.fromarray(camera.background[y0:y0 + ch, x0:x0 + cw])
    draw = ImageDraw.Draw(img)
    for _ in range(rng.poisson(p.clutter_rate)):  # bins, signs, parked bikes, ...
        cx, cy = rng.uniform(0, cw), rng.uniform(0.2, 1.0) * ch
        ow, oh = rng.uniform(0.1, 0.4) * cw, rng.uniform(0.05, 0.3) * ch
        rgb = rng.uniform(0, 1, 3)
        fill = _rgb(rgb.mean() + p.background_saturation * (rgb - rgb.mean()))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([cx - ow / 2, cy - oh / 2, cx + ow / 2, cy + oh / 2], fill=fill)
    u = ch * camera.scale * pose.scale * (person.height if person is not None else 1.0)
    if person is not None:
        _draw_person(img, person, pose, cw / 2 + pose.dx * cw, ch * (0.96 + pose.dy), u,
                     p.pose_jitter)
    if rng.random() < min(0.9, p.occlusion_rate * camera.occlusion):
        _occlude(img, rng, p, u)

    img = img.resize((w, h), Image.BILINEAR)
    if camera.lowres < 0.98:
        small = (max(8, int(w * camera.lowres)), max(16, int(h * camera.lowres)))
        img = img.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    if camera.blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(camera.blur))

    x = np.asarray(img, dtype=np.float32) / 255.0
    sx, sy = camera.light_slope
    light = 1 + sx * (np.linspace(-0.5, 0.5, w)[None, :]) + sy * np.linspace(-0.5, 0.5, h)[:, None]
    gains = np.asarray(camera.gains) * np.exp(rng.normal(0, p.colour_noise, 3))
    x = x * (light[..., None] * gains).astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + camera.saturation * (x - grey)
    x = np.clip(x, 0, 1) ** camera.gamma
    x = x * 255 + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(p.pixel_noise)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
