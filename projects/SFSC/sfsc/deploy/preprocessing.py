"""The test-time preprocessing of a ReID model, as data that travels with an exported model.

FastReID's test transforms (``build_transforms(cfg, is_train=False)``) are: PIL RGB image →
Resize to INPUT.SIZE_TEST (H, W) with bicubic interpolation → (3, H, W) float in 0-255. The
model then subtracts MODEL.PIXEL_MEAN and divides by MODEL.PIXEL_STD (0-255 scale); an exported
:class:`~sfsc.deploy.feature_model.ReIDFeatureModel` does that inside. :func:`image_to_input`
implements the same steps with PIL alone, so a deployment needs neither FastReID nor
torchvision to feed the model exactly what it was tested with.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageOps

from .errors import DeployError

__all__ = ["Preprocessing", "load_rgb", "image_to_input"]


@dataclass(frozen=True)
class Preprocessing:
    """What an image goes through before the exported model; stored in the export's JSON."""

    height: int
    width: int
    mean: Tuple[float, ...]  # per channel, 0-255 scale; applied inside the exported model
    std: Tuple[float, ...]
    channel_order: str = "RGB"
    value_range: Tuple[float, float] = (0.0, 255.0)
    interpolation: str = "bicubic"
    layout: str = "NCHW"
    dtype: str = "float32"
    normalization_in_model: bool = True
    steps: List[str] = field(default_factory=lambda: [
        "decode with PIL, apply the EXIF orientation, convert to RGB",
        "resize to (width, height) with PIL bicubic interpolation (PIL.Image.BICUBIC)",
        "float32 array of values 0-255, channels first (3, height, width)",
        "stack into a batch (N, 3, height, width); the model subtracts mean and divides by std",
    ])

    @classmethod
    def from_cfg(cls, cfg) -> Preprocessing:
        """The test preprocessing of a FastReID config; DeployError if it is not a fixed size."""
        size = list(cfg.INPUT.SIZE_TEST)
        if len(size) != 2:
            raise DeployError(f"INPUT.SIZE_TEST {size} is not (height, width): an exported model "
                              "takes one fixed input size. Set INPUT.SIZE_TEST [H, W].")
        if cfg.INPUT.CROP.ENABLED:
            raise DeployError("INPUT.CROP.ENABLED adds a centre crop to the test transforms, "
                              "which exported models do not describe; export a model tested "
                              "without it (INPUT.CROP.ENABLED False).")
        return cls(int(size[0]), int(size[1]), tuple(float(v) for v in cfg.MODEL.PIXEL_MEAN),
                   tuple(float(v) for v in cfg.MODEL.PIXEL_STD))

    @classmethod
    def from_json(cls, data: dict) -> Preprocessing:
        """Inverse of :meth:`to_json`; DeployError for a description this code cannot follow."""
        try:
            spec = cls(**{k: tuple(v) if isinstance(v, list) and k != "steps" else v
                          for k, v in data.items()})
        except TypeError as e:
            raise DeployError(f"the preprocessing description {data} is incomplete or has "
                              f"unknown fields ({e}); re-export the model.") from None
        if (spec.channel_order, spec.interpolation, spec.layout) != ("RGB", "bicubic", "NCHW"):
            raise DeployError(f"unsupported preprocessing {spec.channel_order} / "
                              f"{spec.interpolation} / {spec.layout}: only RGB, bicubic, NCHW.")
        return spec

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the model input."""
        return self.height, self.width


def load_rgb(path: str) -> Image.Image:
    """Decode an image file as FastReID's ``read_image(path, "RGB")`` does (EXIF-rotated RGB).

    Raises OSError (incl. PIL.UnidentifiedImageError) for a missing, unreadable or truncated file.
    """
    with Image.open(path) as image:
        image.load()  # decode now: a truncated file fails here, not later in a batch
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # FastReID ignores broken EXIF data the same way
            pass
        return image.convert("RGB")


def image_to_input(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """An RGB PIL image -> (3, H, W) float32 in 0-255, as FastReID's test transforms make it."""
    resized = image.convert("RGB").resize((spec.width, spec.height), Image.BICUBIC)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1).copy()
