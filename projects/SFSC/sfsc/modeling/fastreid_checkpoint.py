"""Initialise a switchable model from a dense FastReID checkpoint (``Baseline`` +
``build_resnet_backbone`` + ``EmbeddingHead``, a ``model_final.pth`` as FastReID saves it).

Key mapping (dense key -> switchable key), every width from the one dense model:

* ``backbone.<conv>.weight`` -> the same key: the whole tensor; each width uses its leading
  channels. Shapes must equal the switchable network's at 1.0x (same DEPTH).
* ``backbone.<bn>.{weight,bias,running_mean,running_var}`` ->
  ``backbone.<bn>.bn.<width>.*``: each width's BN takes the dense BN's leading channels.
* Head. FastReID's ``heads.bottleneck`` is ``[1x1 conv (only if EMBEDDING_DIM > 0)] [BNNeck
  (if WITH_BNNECK)]``; the switchable head always has the 1x1 embedding conv
  (``heads.bottleneck.0``, so that every width reaches one dimension) and then one BNNeck per
  width (``heads.bottleneck.1.bn.<width>``):

  - dense conv present: copied into ``heads.bottleneck.0.weight`` (same shape required);
  - dense conv absent: ``heads.bottleneck.0`` is set to the identity, which needs the
    backbone's 1.0x channel count to equal the feature dimension (ResNet-18/34: 512,
    ResNet-50: 2048, as FEAT_DIM is in FastReID's configs). A sub-width w then starts from its
    own pooled channels, zero-padded to the full dimension;
  - the dense BNNeck is copied whole into every width's BNNeck (the feature is never sliced).

* ``heads.weight`` (classifier, C x D) is copied when C and D match; with another identity count
  it is left as initialised and reported.

So the 1.0x sub-network computes the dense network's features, except for one difference of
architecture: FastReID's ResNet stem pools with ``MaxPool2d(3, 2, ceil_mode=True)``, the
switchable ResNet with torchvision's ``MaxPool2d(3, 2, padding=1)`` (same output size for even
inputs, windows shifted by one pixel).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import nn

from .switchable import SwitchableBatchNorm2d, SwitchableConv2d, width_key

logger = logging.getLogger(__name__)

__all__ = ["DenseCheckpointError", "DenseInit", "read_dense_state", "init_from_dense"]

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# Dense layers the switchable backbone has no counterpart for, by the key fragment that shows them.
_DENSE_ONLY = {".se.": "squeeze-and-excitation (MODEL.BACKBONE.WITH_SE)",
               ".IN.": "IBN (MODEL.BACKBONE.WITH_IBN)", "NL_": "non-local (MODEL.BACKBONE.WITH_NL)"}


class DenseCheckpointError(ValueError):
    """A dense checkpoint that does not fit the switchable model; names the key and the fix."""


@dataclass
class DenseInit:
    """What :func:`init_from_dense` initialised."""

    loaded: List[str] = field(default_factory=list)  # switchable modules initialised
    skipped: Dict[str, str] = field(default_factory=dict)  # switchable key -> why not
    embedding: str = ""  # "copied" or "identity"


def read_dense_state(path: str, allow_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """The model state of a FastReID checkpoint (``{"model": state, ...}`` or a bare state)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except FileNotFoundError:
        raise DenseCheckpointError(f"dense checkpoint {path} does not exist") from None
    except Exception as e:  # unpickling refused, truncated file, not torch.save output
        raise DenseCheckpointError(
            f"cannot read {path} as a FastReID checkpoint ({str(e).splitlines()[0]}); a file "
            "that holds pickled objects loads only with SFSC.CHECKPOINT.ALLOW_PICKLE True, "
            "for files you trust") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DenseCheckpointError(f"{path} holds no model state dict (expected FastReID's "
                                   "{'model': state_dict, ...})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _take(state: Dict[str, torch.Tensor], key: str, shape, used: set, path: str) -> torch.Tensor:
    if key not in state:
        raise DenseCheckpointError(f"{path} lacks {key}: it is not a FastReID Baseline with "
                                   "build_resnet_backbone of this MODEL.BACKBONE.DEPTH")
    value = state[key]
    if tuple(value.shape) != tuple(shape):
        raise DenseCheckpointError(
            f"{path}: {key} has shape {tuple(value.shape)}, the switchable model needs "
            f"{tuple(shape)} at 1.0x (compare MODEL.BACKBONE.DEPTH, FEAT_DIM and "
            "MODEL.HEADS.EMBEDDING_DIM with the checkpoint's config.yaml)")
    used.add(key)
    return value


def _load_bn(module: SwitchableBatchNorm2d, state, prefix: str, used: set, path: str) -> None:
    full = max(module.num_features_list)
    for w, c in zip(module.widths, module.num_features_list):
        bn = module.bn[width_key(w)]
        for t in _BN_TENSORS:
            getattr(bn, t).data.copy_(_take(state, f"{prefix}.{t}", (full,), used, path)[:c])
    used.add(f"{prefix}.num_batches_tracked")


@torch.no_grad()
def init_from_dense(model: nn.Module, state: Dict[str, torch.Tensor], path: str = "checkpoint",
                    classifier: bool = True) -> DenseInit:
    """Initialise a SwitchableBaseline (backbone + SwitchableEmbeddingHead) from a dense state.

    Raises DenseCheckpointError, naming the key, for a missing or mis-shaped tensor, or for
    dense layers (SE, IBN, non-local) the switchable model lacks.
    """
    report = DenseInit()
    used: set = set()
    for name, module in model.backbone.named_modules():
        prefix = f"backbone.{name}"
        if isinstance(module, SwitchableConv2d):
            module.weight.copy_(_take(state, f"{prefix}.weight", module.weight.shape, used, path))
            report.loaded.append(prefix)
        elif isinstance(module, SwitchableBatchNorm2d):
            _load_bn(module, state, prefix, used, path)
            report.loaded.append(prefix)
    leftover = [k for k in state if k.startswith("backbone.") and k not in used]
    if leftover:
        kinds = sorted({why for k in leftover for frag, why in _DENSE_ONLY.items() if frag in k})
        raise DenseCheckpointError(
            f"{path} has {len(leftover)} backbone tensors the switchable backbone has no place "
            f"for ({', '.join(leftover[:4])}{' ...' if len(leftover) > 4 else ''})"
            + (f": {', '.join(kinds)} layers, which the switchable backbones do not support"
               if kinds else ""))
    _init_head(model.heads, state, path, used, report, classifier)
    logger.info(f"Initialised {len(report.loaded)} switchable layers from the dense checkpoint "
                f"{path} (embedding: {report.embedding}"
                + (f"; not initialised: {report.skipped}" if report.skipped else "") + ")")
    return report


def _init_head(heads: nn.Module, state, path: str, used: set, report: DenseInit,
               classifier: bool) -> None:
    conv = heads.bottleneck[0]
    bnneck = heads.bottleneck[1] if len(heads.bottleneck) > 1 else None
    if "heads.bottleneck.0.weight" in state and state["heads.bottleneck.0.weight"].dim() == 4:
        conv.weight.copy_(_take(state, "heads.bottleneck.0.weight", conv.weight.shape, used,
                                path))
        dense_bn = "heads.bottleneck.1" if "heads.bottleneck.1.weight" in state else ""
        report.embedding = "copied"
    else:
        out_dim, in_dim = conv.weight.shape[:2]
        if in_dim != out_dim:
            raise DenseCheckpointError(
                f"{path} has no embedding conv (EMBEDDING_DIM 0: its feature is the pooled "
                f"backbone output), so heads.bottleneck.0 would be the identity, but the "
                f"switchable head maps {in_dim} backbone channels to {out_dim}. Set "
                f"MODEL.HEADS.EMBEDDING_DIM 0 and MODEL.BACKBONE.FEAT_DIM {in_dim}.")
        conv.weight.copy_(torch.eye(out_dim).view(out_dim, out_dim, 1, 1))
        dense_bn = "heads.bottleneck.0" if "heads.bottleneck.0.weight" in state else ""
        report.embedding = "identity"
    report.loaded.append("heads.bottleneck.0")
    if bnneck is not None and dense_bn:
        dim = bnneck.num_features_list[0]
        for bn in bnneck.bn.values():
            for t in _BN_TENSORS:
                getattr(bn, t).copy_(_take(state, f"{dense_bn}.{t}", (dim,), used, path))
        report.loaded.append("heads.bottleneck.1")
    elif bnneck is not None:
        report.skipped["heads.bottleneck.1"] = "the dense head has no BNNeck (WITH_BNNECK False)"
    elif dense_bn:
        raise DenseCheckpointError(f"{path} has a BNNeck ({dense_bn}) but the switchable head "
                                   "has none: set MODEL.HEADS.WITH_BNNECK True")
    weight = state.get("heads.weight")
    if not classifier:
        report.skipped["heads.weight"] = "not asked for"
    elif weight is None or weight.shape != heads.weight.shape:
        found = tuple(weight.shape) if weight is not None else "none"
        report.skipped["heads.weight"] = (f"classifier {found} in the checkpoint, "
                                          f"{tuple(heads.weight.shape)} here (another identity "
                                          "count: trained from its initialisation)")
    else:
        heads.weight.copy_(weight)
        report.loaded.append("heads.weight")
