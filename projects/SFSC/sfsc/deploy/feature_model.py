"""One width of a switchable ReID model as a plain feature extractor, ready to export.

The exported network is what a device runs: pixel normalisation → the static backbone of that
width → the head's pooling, embedding conv and BNNeck → (optionally) L2 normalisation. It has
no classifier and no switching machinery; its weights are that width's slices, so it is
physically smaller. L2-normalised output is the default: retrieval compares features by cosine
similarity (FastReID's TEST.METRIC cosine normalises anyway), and a unit vector is what a
deployer stores and compares with a dot product.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.export import export_static
from .bn_folding import fold_batchnorm
from .loading import check_width

__all__ = ["ReIDFeatureModel", "build_feature_model", "count_parameters"]


class ReIDFeatureModel(nn.Module):
    """images (N, 3, H, W) RGB float in 0-255 -> features (N, D) float32.

    Args:
        backbone: a static (non-switchable) backbone.
        pool: the head's pooling layer, (N, C, h, w) -> (N, C, 1, 1).
        neck: the head's embedding conv (+ BNNeck, unless folded into it), -> (N, D, 1, 1).
        pixel_mean / pixel_std: per-channel statistics in the 0-255 scale.
        l2_normalize: return unit-length features.
    """

    def __init__(self, backbone: nn.Module, pool: nn.Module, neck: nn.Module,
                 pixel_mean: Sequence[float], pixel_std: Sequence[float],
                 l2_normalize: bool = True):
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.neck = neck
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32)
                             .view(1, -1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32)
                             .view(1, -1, 1, 1))
        self.l2_normalize = l2_normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.pixel_mean) / self.pixel_std
        feat = self.neck(self.pool(self.backbone(x)))[:, :, 0, 0]
        return F.normalize(feat, dim=1) if self.l2_normalize else feat


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def build_feature_model(model: nn.Module, width: float, fold_bn: bool = True,
                        l2_normalize: bool = True, input_size: Sequence[int] = (256, 128)
                        ) -> ReIDFeatureModel:
    """The sub-model of a SwitchableBaseline at ``width`` as a :class:`ReIDFeatureModel`.

    ``fold_bn`` folds every BatchNorm that follows a conv (backbone BNs and the BNNeck) into
    that conv, checked on a random input of ``input_size`` (H, W). ``model`` is not changed.
    Raises DeployError if the model holds no sub-model of that width.
    """
    width = check_width(model, width)
    static = export_static(model, width).eval()
    head = static.heads
    feature_model = ReIDFeatureModel(static.backbone, head.pool_layer, head.bottleneck,
                                     model.pixel_mean.flatten().tolist(),
                                     model.pixel_std.flatten().tolist(), l2_normalize).eval()
    feature_model.requires_grad_(False)
    if fold_bn:
        generator = torch.Generator().manual_seed(0)
        example = torch.rand(2, 3, *input_size, generator=generator) * 255
        fold_batchnorm(feature_model, example)
    return feature_model
