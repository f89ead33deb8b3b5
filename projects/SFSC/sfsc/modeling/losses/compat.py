"""The compatible losses, one registry entry each, selected by ``SFSC.COMPAT_LOSS``.

A compatible loss compares a sub-model's retrieval feature with a *reference*: the classifier
(C, D) it is pushed through and, for metric losses, the reference's features of the same batch.
Adding a loss is one class here (or in its own file) plus ``@register_compat_loss``; the name
check and its error live in :func:`build_compat_loss` only. Keyed by the config's lower-case
names, like ``SFSC.AGGREGATION``'s strategies (FastReID's Registry keys by class name).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from .asymmetric_loss import ASYMMETRIC_KINDS, asymmetric_loss
from .bct_loss import bct_loss
from .compat_warmup import CompatWarmup
from .distillation import InplaceDistillation
from .evidential_loss import ACTIVATIONS, KL_NORMS, KL_TARGETS, evidential_loss

__all__ = ["COMPAT_LOSSES", "CompatLoss", "register_compat_loss", "compat_loss_names",
           "build_compat_loss", "KL_SCHEDULES"]

COMPAT_LOSSES: Dict[str, type] = {}

KL_SCHEDULES = ("constant", "iters", "epochs")


class CompatLoss:
    """``loss(feat, logits, ref_feat, targets, iteration, epoch) -> (loss, diagnostics)``.

    feat (N, D): the sub-model's neck feature; logits (N, C): feat through the reference
    classifier (None unless ``uses_logits``); ref_feat (N, D): the reference's features of the
    batch, detached (None unless ``uses_reference_features``); targets (N,) int64.
    Diagnostics are detached scalars for logging.
    """

    name = ""
    uses_logits = True
    uses_reference_features = False

    def __init__(self, cfg):
        self.weight = float(cfg.SFSC.COMPAT_WEIGHT)

    def __call__(self, feat: torch.Tensor, logits: Optional[torch.Tensor],
                 ref_feat: Optional[torch.Tensor], targets: torch.Tensor, iteration: int = 0,
                 epoch: int = 0) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        raise NotImplementedError


def register_compat_loss(cls: type) -> type:
    """Class decorator: make ``cls`` selectable as ``SFSC.COMPAT_LOSS: <cls.name>``."""
    if not cls.name or cls.name in COMPAT_LOSSES or cls.name == "none":
        raise ValueError(f"compatible loss name {cls.name!r} is empty, reserved or taken")
    COMPAT_LOSSES[cls.name] = cls
    return cls


@register_compat_loss
class EvidentialCompatLoss(CompatLoss):
    """SFSC's evidential loss with every choice of ``SFSC.EVIDENTIAL.*`` (see evidential_loss)."""

    name = "evidential"

    def __init__(self, cfg):
        super().__init__(cfg)
        e = cfg.SFSC.EVIDENTIAL
        for key, value, allowed in (("ACTIVATION", e.ACTIVATION, ACTIVATIONS),
                                    ("KL_TARGET", e.KL_TARGET, KL_TARGETS),
                                    ("KL_NORM", e.KL_NORM, KL_NORMS),
                                    ("KL_SCHEDULE", e.KL_SCHEDULE, KL_SCHEDULES)):
            if value not in allowed:
                raise ValueError(f"SFSC.EVIDENTIAL.{key} {value!r} is not one of {allowed}")
        if e.PRIOR <= 0:
            raise ValueError(f"SFSC.EVIDENTIAL.PRIOR must be > 0, got {e.PRIOR}")
        if not (math.isfinite(e.LOGIT_CLAMP) and e.LOGIT_CLAMP > 0):
            raise ValueError(f"SFSC.EVIDENTIAL.LOGIT_CLAMP must be a finite number > 0 (the "
                             f"logits are clamped to [-c, c] before the activation), got "
                             f"{e.LOGIT_CLAMP}")
        if not e.LAMBDA >= 0:
            raise ValueError(f"SFSC.EVIDENTIAL.LAMBDA (the KL weight) must be >= 0, got "
                             f"{e.LAMBDA}; 0 trains with the Bayes-risk term alone")
        for schedule, key in (("iters", "ANNEAL_ITERS"), ("epochs", "ANNEAL_EPOCHS")):
            if e.KL_SCHEDULE == schedule and e[key] <= 0:
                raise ValueError(f"SFSC.EVIDENTIAL.KL_SCHEDULE {schedule} anneals the KL weight "
                                 f"over SFSC.EVIDENTIAL.{key} {schedule}, which is {e[key]}: "
                                 f"set {key} > 0, or KL_SCHEDULE constant for a constant weight")
        self.lam = float(e.LAMBDA)
        self.schedule = e.KL_SCHEDULE
        self.anneal_iters = int(e.ANNEAL_ITERS)
        self.anneal_epochs = int(e.ANNEAL_EPOCHS)
        self.terms = dict(clamp=float(e.LOGIT_CLAMP), kl_target=e.KL_TARGET, kl_norm=e.KL_NORM,
                          activation=e.ACTIVATION, prior=float(e.PRIOR))

    def kl_weight(self, iteration: int, epoch: int) -> float:
        """λ_t: constant, linear over ANNEAL_ITERS, or Sensoy's λ·min(1, epoch / ANNEAL_EPOCHS)."""
        if self.schedule == "iters":
            return self.lam * min(1.0, iteration / self.anneal_iters)
        if self.schedule == "epochs":
            return self.lam * min(1.0, epoch / self.anneal_epochs)
        return self.lam

    def __call__(self, feat, logits, ref_feat, targets, iteration=0, epoch=0):
        terms = evidential_loss(logits, targets, self.kl_weight(iteration, epoch), **self.terms)
        diagnostics = {"u": terms["uncertainty"], "ace": terms["ace"], "kl": terms["kl"]}
        return terms["loss"] * self.weight, diagnostics


@register_compat_loss
class BCTCompatLoss(CompatLoss):
    """BCT's influence loss: cross-entropy through the reference classifier."""

    name = "bct"

    def __call__(self, feat, logits, ref_feat, targets, iteration=0, epoch=0):
        return bct_loss(logits, targets) * self.weight, {}


@register_compat_loss
class AsymmetricCompatLoss(CompatLoss):
    """Asymmetric metric loss against the reference's features (contrastive or triplet)."""

    name = "asymmetric"
    uses_logits = False
    uses_reference_features = True

    def __init__(self, cfg):
        super().__init__(cfg)
        a = cfg.SFSC.ASYMMETRIC
        if a.TYPE not in ASYMMETRIC_KINDS:
            raise ValueError(f"SFSC.ASYMMETRIC.TYPE {a.TYPE!r} is not one of {ASYMMETRIC_KINDS}")
        self.kind, self.margin = a.TYPE, float(a.MARGIN)

    def __call__(self, feat, logits, ref_feat, targets, iteration=0, epoch=0):
        loss = asymmetric_loss(feat, ref_feat, targets, kind=self.kind, margin=self.margin)
        return loss * self.weight, {}


def compat_loss_names() -> Tuple[str, ...]:
    """Valid SFSC.COMPAT_LOSS values: every registered loss and "none"."""
    return (*sorted(COMPAT_LOSSES), "none")


def build_compat_loss(cfg) -> Optional[CompatLoss]:
    """The loss named by SFSC.COMPAT_LOSS (None for "none"); unknown names, and compatible-task
    keys that cannot work (SFSC.DISTILL.*, SFSC.COMPAT_WARMUP.*), raise ValueError."""
    # Checked here, where the config check asks the compatible losses, though the model builds
    # them itself: they add to and scale the compatible tasks.
    InplaceDistillation.from_config(cfg)
    CompatWarmup.from_config(cfg)
    name = cfg.SFSC.COMPAT_LOSS
    if name == "none":
        return None
    if name not in COMPAT_LOSSES:
        raise ValueError(f"SFSC.COMPAT_LOSS {name!r} is not one of {compat_loss_names()}")
    return COMPAT_LOSSES[name](cfg)
