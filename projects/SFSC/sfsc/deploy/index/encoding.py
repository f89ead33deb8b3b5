"""The features the evaluation ranks, for images outside a dataset: a switchable model at one
width, its config's test transforms and, with TEST.FLIP.ENABLED, the average with the mirrored
image (as :func:`sfsc.evaluation.feature_extraction.extract_features` computes them).

An index built from these features and queried with the evaluation's features (or the other
way round) compares like with like; ``sfsc.deploy.extraction.switchable_encoder`` leaves the
flip out, as an exported model computes features.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...modeling.switchable import width_context
from ..extraction import Encoder, switchable_info
from ..loading import LoadedModel, check_width
from ..preprocessing import Preprocessing

__all__ = ["evaluation_encoder"]


def evaluation_encoder(loaded: LoadedModel, width: float) -> Encoder:
    """The evaluation's features of images (N, 3, H, W) 0-255 at ``width``: (N, D) float32,
    unit length."""
    from fastreid.data.transforms import build_transforms

    cfg, model = loaded.cfg, loaded.model
    width = check_width(model, width)
    flip = bool(cfg.TEST.FLIP.ENABLED)
    transforms = build_transforms(cfg, is_train=False)

    def transform(image: Image.Image) -> np.ndarray:
        return transforms(image).numpy()

    @torch.no_grad()
    def encode(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images)
        with width_context(model, width):
            feats = model(batch).float()
            if flip:
                feats = (feats + model(batch.flip(dims=[3])).float()) / 2
        return F.normalize(feats, dim=1).numpy()

    spec = Preprocessing(*cfg.INPUT.SIZE_TEST, tuple(cfg.MODEL.PIXEL_MEAN),
                         tuple(cfg.MODEL.PIXEL_STD))
    return Encoder(transform, encode, switchable_info(loaded, width, flip=flip),
                   dict(spec.to_json(), transforms=repr(transforms).replace("\n", " "),
                        flip=flip))
