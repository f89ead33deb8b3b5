"""A picture of a Market-1501-layout dataset's cameras: one row per camera, one column per
identity, so that a column shows one identity as every camera sees it."""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .datasets import parse_name
from .generated import read_manifest
from .layout import SUBSETS

__all__ = ["SheetCell", "choose_sheet", "sample_sheet"]

_BACKGROUND = (255, 255, 255)
_EMPTY = (225, 225, 225)
_TEXT = (0, 0, 0)

SheetCell = Optional[str]  # an image path, or None where the camera never sees the identity


def _images_by_identity(folder: str) -> Dict[int, Dict[int, List[str]]]:
    """pid -> camera (1-based) -> image paths (sorted), over every subset; distractors left out."""
    out: Dict[int, Dict[int, List[str]]] = defaultdict(lambda: defaultdict(list))
    for subset in SUBSETS:
        for name in sorted(os.listdir(os.path.join(folder, subset))):
            if name.endswith(".jpg"):
                pid, cam = parse_name(name)[:2]
                if pid > 0:
                    out[pid][cam].append(os.path.join(folder, subset, name))
    return out


def choose_sheet(folder: str, identities: int = 8, seed: int = 0
                 ) -> Tuple[List[int], List[int], List[List[SheetCell]]]:
    """(pids, cameras, cells[camera row][identity column]): ``identities`` identities drawn
    at random (``seed``) among those seen by the most cameras, each camera's image of one of
    them drawn at random too."""
    images = _images_by_identity(folder)
    cameras = sorted({cam for by_cam in images.values() for cam in by_cam})
    most = max(len(by_cam) for by_cam in images.values())
    rng = np.random.default_rng(seed)
    # Widest coverage first: the fewest empty cells.
    for k in range(most, 0, -1):
        pool = sorted(pid for pid, by_cam in images.items() if len(by_cam) >= k)
        if len(pool) >= identities or k == 1:
            break
    pids = sorted(int(p) for p in rng.choice(pool, min(identities, len(pool)), replace=False))
    cells = [[images[pid][cam][rng.integers(len(images[pid][cam]))] if cam in images[pid]
              else None for pid in pids] for cam in cameras]
    return pids, cameras, cells


def _camera_labels(folder: str, cameras: List[int]) -> List[str]:
    manifest = read_manifest(folder) or {}
    described = {c["camera"]: f"{c['style']}, {c['condition']}"
                 for c in manifest.get("cameras", [])}
    return [f"c{cam}" + (f"  {described[f'c{cam}']}" if f"c{cam}" in described else "")
            for cam in cameras]


def sample_sheet(folder: str, identities: int = 8, seed: int = 0, scale: int = 2,
                 label_width: int = 150) -> Image.Image:
    """The sheet of :func:`choose_sheet` as an RGB picture: images enlarged ``scale`` times
    (nearest neighbour: pixels stay visible), camera labels on the left, pids on top."""
    pids, cameras, cells = choose_sheet(folder, identities, seed)
    first = next(path for row in cells for path in row if path is not None)
    with Image.open(first) as img:
        w, h = img.size[0] * scale, img.size[1] * scale
    pad, top = 4, 18
    sheet = Image.new("RGB", (label_width + len(pids) * (w + pad) + pad,
                              top + len(cameras) * (h + pad) + pad), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for j, pid in enumerate(pids):
        draw.text((label_width + pad + j * (w + pad), 3), f"{pid:04d}", fill=_TEXT, font=font)
    for i, (label, row) in enumerate(zip(_camera_labels(folder, cameras), cells)):
        y = top + pad + i * (h + pad)
        draw.text((pad, y + h // 2 - 6), label, fill=_TEXT, font=font)
        for j, path in enumerate(row):
            x = label_width + pad + j * (w + pad)
            if path is None:
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=_EMPTY)
                continue
            with Image.open(path) as img:
                sheet.paste(img.convert("RGB").resize((w, h), Image.NEAREST), (x, y))
    return sheet
