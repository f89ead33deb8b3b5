"""FastReID's EmbeddingHead made switchable: every width emits the same feature dimension.

pool → slimmable-input / fixed-output 1×1 embedding conv → per-width BNNeck → feature.
The classifier (``weight``, num_classes × feat_dim) is shared by all widths: it is the full
model's classifier that the compatible losses push every sub-model's features through.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.layers import any_softmax, pooling
from fastreid.layers.weight_init import weights_init_kaiming
from fastreid.modeling.heads.build import REID_HEADS_REGISTRY

from ...config import model_widths
from ..switchable import SwitchableBatchNorm2d, SwitchableConv2d

__all__ = ["SwitchableEmbeddingHead"]


@REID_HEADS_REGISTRY.register()
class SwitchableEmbeddingHead(nn.Module):
    """Head of a switchable ReID model.

    Args:
        cfg: FastReID config (MODEL.HEADS.*, MODEL.BACKBONE.FEAT_DIM, SFSC.*).
        in_channels: channels of the backbone's output at each width (``backbone.out_channels``).
    """

    def __init__(self, cfg, in_channels: Sequence[int]):
        super().__init__()
        heads = cfg.MODEL.HEADS
        widths = model_widths(cfg)
        if not hasattr(pooling, heads.POOL_LAYER):
            raise ValueError(f"MODEL.HEADS.POOL_LAYER {heads.POOL_LAYER!r} is not one of "
                             f"{pooling.__all__}")
        if not hasattr(any_softmax, heads.CLS_LAYER):
            raise ValueError(f"MODEL.HEADS.CLS_LAYER {heads.CLS_LAYER!r} is not one of "
                             f"{any_softmax.__all__}")
        if heads.NORM not in ("BN", "syncBN"):
            raise ValueError(f"MODEL.HEADS.NORM must be 'BN' or 'syncBN', got {heads.NORM!r}")
        # Every width must reach the same dimension, so the embedding layer always exists.
        self.feat_dim = heads.EMBEDDING_DIM or cfg.MODEL.BACKBONE.FEAT_DIM
        self.pool_layer = getattr(pooling, heads.POOL_LAYER)()
        self.neck_feat = heads.NECK_FEAT
        neck = [SwitchableConv2d(widths, list(in_channels), self.feat_dim, 1)]
        if heads.WITH_BNNECK:
            neck.append(SwitchableBatchNorm2d(widths, self.feat_dim, heads.NORM, bias_freeze=True))
        self.bottleneck = nn.Sequential(*neck)
        self.weight = nn.Parameter(torch.empty(heads.NUM_CLASSES, self.feat_dim))
        self.cls_layer = getattr(any_softmax, heads.CLS_LAYER)(heads.NUM_CLASSES, heads.SCALE,
                                                                heads.MARGIN)
        for m in self.bottleneck.modules():  # the per-width BNs inside, not their container
            if not isinstance(m, SwitchableBatchNorm2d):
                weights_init_kaiming(m)
        nn.init.normal_(self.weight, std=0.01)

    def class_logits(self, feat: torch.Tensor, weight: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """Logits of features (N, D) under a classifier (C, D), default this head's, scaled as
        the classification layer scales them (raw for Linear, s·cosine otherwise)."""
        logits = self._unscaled_logits(feat, self.weight if weight is None else weight)
        return logits if self._linear else logits * self.cls_layer.s

    @property
    def _linear(self) -> bool:
        return self.cls_layer.__class__.__name__ == "Linear"

    def _unscaled_logits(self, feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # What the classification layer expects: dot products for Linear, else cosines.
        if self._linear:
            return F.linear(feat, weight)
        return F.linear(F.normalize(feat), F.normalize(weight))

    def forward(self, features: torch.Tensor, targets: Optional[torch.Tensor] = None
                ) -> torch.Tensor | Dict[str, torch.Tensor]:
        """features (N, C_w, H, W) -> eval: (N, feat_dim); train: FastReID's output dict plus
        ``neck_feat`` (N, feat_dim), the retrieval feature the compatible losses use."""
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat)[..., 0, 0]
        if not self.training:
            return neck_feat
        logits = self._unscaled_logits(neck_feat, self.weight)
        cls_outputs = self.cls_layer(logits.clone(), targets)  # cls_layer works in place
        if self.neck_feat == "before":
            feat = pool_feat[..., 0, 0]
        elif self.neck_feat == "after":
            feat = neck_feat
        else:
            raise KeyError(f"{self.neck_feat} is invalid for MODEL.HEADS.NECK_FEAT")
        return {
            "cls_outputs": cls_outputs,
            "pred_class_logits": logits.mul(self.cls_layer.s),
            "features": feat,
            "neck_feat": neck_feat,
        }
