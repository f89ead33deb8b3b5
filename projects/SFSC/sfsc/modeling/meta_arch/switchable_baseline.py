"""FastReID's Baseline as a switchable network trained as several tasks.

In training, ``forward`` returns one loss dict per *task*: ``ori`` (FastReID's losses from
MODEL.LOSSES on the model at SFSC.TRAIN_WIDTH) and ``compat@<w>`` (the compatible loss of the
sub-model at each width w in SFSC.WIDTHS). The trainer takes one gradient per task and
aggregates them (SFSC.AGGREGATION). The compatible loss compares a sub-model with a
*reference*: the full-width model itself (self-compatibility), or a frozen, separately trained
model loaded from SFSC.OLD_MODEL.WEIGHTS (one-to-one compatibility, e.g. BCT). A compatible
task may also hold in-place distillation (SFSC.DISTILL) and be ramped in by a warm-up factor
(SFSC.COMPAT_WARMUP).

In evaluation, ``forward`` returns the retrieval features at the model's current width; switch
it with :func:`sfsc.modeling.switchable.set_width` / ``width_context``.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Dict, Optional

import torch

from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.heads.build import REID_HEADS_REGISTRY
from fastreid.modeling.meta_arch.baseline import Baseline
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY

from ...config import model_widths
from ..losses import CompatWarmup, InplaceDistillation, build_compat_loss
from ..switchable import width_context
from .old_model import load_old_model

logger = logging.getLogger(__name__)

__all__ = ["SwitchableBaseline"]


def _fastreid_loss_kwargs(cfg) -> dict:
    # The same mapping Baseline.from_config builds, so that Baseline.losses() works unchanged.
    losses = cfg.MODEL.LOSSES
    return {
        "loss_names": losses.NAME,
        "ce": {"eps": losses.CE.EPSILON, "alpha": losses.CE.ALPHA, "scale": losses.CE.SCALE},
        "tri": {"margin": losses.TRI.MARGIN, "norm_feat": losses.TRI.NORM_FEAT,
                "hard_mining": losses.TRI.HARD_MINING, "scale": losses.TRI.SCALE},
        "circle": {"margin": losses.CIRCLE.MARGIN, "gamma": losses.CIRCLE.GAMMA,
                   "scale": losses.CIRCLE.SCALE},
        "cosface": {"margin": losses.COSFACE.MARGIN, "gamma": losses.COSFACE.GAMMA,
                    "scale": losses.COSFACE.SCALE},
    }


@META_ARCH_REGISTRY.register()
class SwitchableBaseline(Baseline):
    """Backbone + switchable head; training returns ``{task: {loss_name: scalar}}``."""

    def __init__(self, cfg):
        backbone = build_backbone(cfg)
        heads = REID_HEADS_REGISTRY.get(cfg.MODEL.HEADS.NAME)(cfg, backbone.out_channels)
        super().__init__(backbone=backbone, heads=heads, pixel_mean=cfg.MODEL.PIXEL_MEAN,
                         pixel_std=cfg.MODEL.PIXEL_STD, loss_kwargs=_fastreid_loss_kwargs(cfg))
        sfsc = cfg.SFSC
        self.widths = model_widths(cfg)
        self.train_width = float(sfsc.TRAIN_WIDTH)
        self.compat_loss = build_compat_loss(cfg)  # None for SFSC.COMPAT_LOSS none
        self.compat_name = sfsc.COMPAT_LOSS
        self.compat_widths = tuple(sorted({float(w) for w in sfsc.WIDTHS})) \
            if self.compat_loss is not None else ()
        self.distill = InplaceDistillation.from_config(cfg)  # None: off
        self.compat_warmup = CompatWarmup.from_config(cfg)  # None: off
        # Kept out of the module tree: not trained, not checkpointed, never switched.
        old_model = load_old_model(cfg) if sfsc.OLD_MODEL.WEIGHTS else None
        self.__dict__["old_model"] = old_model
        if old_model is None and self.compat_widths and 1.0 not in self.widths:
            raise ValueError("a compatible loss needs a reference: the full width 1.0 in the "
                             "model, or a frozen old model in SFSC.OLD_MODEL.WEIGHTS")
        self.iteration = 0  # set by the trainer; drives KL weight schedules
        self.iters_per_epoch = 0  # set by the trainer when the schedule counts epochs
        # Per-width scalars of the last training batch (``<name>@<width>``), for logging.
        self.diagnostics: Dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.old_model is not None:
            self.old_model.eval()
        return self

    def preprocess_image(self, batched_inputs) -> torch.Tensor:
        """Normalise images out of place (Baseline's in-place version corrupts a reused batch)."""
        images = batched_inputs["images"] if isinstance(batched_inputs, dict) else batched_inputs
        images = images.to(self.device, non_blocking=True)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        if not self.training:
            return self.heads(self.backbone(images))
        targets = batched_inputs["targets"].to(self.device, non_blocking=True)
        return self.task_losses(images, targets)

    def _outputs(self, images: torch.Tensor, targets: torch.Tensor, width: float) -> dict:
        with width_context(self, width):
            return self.heads(self.backbone(images), targets)

    def task_losses(self, images: torch.Tensor, targets: torch.Tensor
                    ) -> OrderedDict[str, Dict[str, torch.Tensor]]:
        """Normalised images (N, 3, H, W), labels (N,) -> ordered ``{task: {loss: scalar}}``."""
        outputs = {}
        for width in sorted({self.train_width, *self.compat_widths}, reverse=True):
            outputs[width] = self._outputs(images, targets, width)
        self.diagnostics = {}
        tasks = OrderedDict(ori=self.losses(outputs[self.train_width], targets))
        self._record(self.train_width, outputs[self.train_width], targets,
                     outputs[self.train_width]["pred_class_logits"])
        if not self.compat_widths:
            return tasks
        ref_weight, ref_feat = self._reference(images, outputs)
        teacher = None
        if self.distill is not None:  # the full model's logits, as the sub-models' are taken
            with torch.no_grad():
                teacher = self.heads.class_logits(outputs[1.0]["neck_feat"])
        factor = None
        if self.compat_warmup is not None:
            factor = self.compat_warmup.factor(self.iteration)
            self.diagnostics["compat_factor"] = torch.tensor(factor)
        for width in self.compat_widths:
            losses = self._compat_losses(outputs[width], targets, ref_weight, ref_feat, width,
                                         teacher)
            if factor is not None:
                losses = {k: v * factor for k, v in losses.items()}
            tasks[f"compat@{width:g}"] = losses
        return tasks

    def _reference(self, images: torch.Tensor, outputs: dict):
        """Classifier (C, D) and detached features (N, D) the sub-models must be compatible with."""
        if self.old_model is None:
            return self.heads.weight, outputs[1.0]["neck_feat"].detach()
        old = self.old_model
        if old.device != self.device:
            old.to(self.device)
        feat = None
        if self.compat_loss.uses_reference_features:
            with torch.no_grad():
                feat = old.heads(old.backbone(images))
        return old.heads.weight.detach(), feat

    def _compat_losses(self, out: dict, targets, ref_weight, ref_feat, width: float,
                       teacher: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The compatible task of one width; ``teacher`` (N, C): the full model's detached
        logits when distilling (then ``ref_weight`` is the full model's classifier)."""
        loss_fn = self.compat_loss
        logits = self.heads.class_logits(out["neck_feat"], ref_weight) \
            if loss_fn.uses_logits or teacher is not None else None
        epoch = self.iteration // self.iters_per_epoch if self.iters_per_epoch else 0
        loss, diagnostics = loss_fn(out["neck_feat"], logits, ref_feat, targets,
                                    self.iteration, epoch)
        losses = {f"loss_{self.compat_name}@{width:g}": loss}
        if teacher is not None:
            losses[f"loss_distill@{width:g}"] = self.distill(logits, teacher)  # logged as a loss
        self._record(width, out, targets, logits, diagnostics)
        return losses

    @torch.no_grad()
    def _record(self, width: float, out: dict, targets: torch.Tensor,
                logits: Optional[torch.Tensor],
                extra: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """Where a collapse shows: the width's training accuracy (top-1 under the model's own
        classifier), BNNeck scale |γ|, the backbone's pooled feature norm, the neck feature
        norm, the logit spread over classes, the shared classifier's row norm, and the
        compatible loss's own terms (u, L_ace, KL for the evidential one)."""
        d = self.diagnostics
        hits = out["pred_class_logits"].argmax(dim=1) == targets
        d[f"acc@{width:g}"] = hits.float().mean()
        neck = self.heads.bottleneck[-1]
        if hasattr(neck, "active_bn"):
            with width_context(self, width):
                d[f"bnneck_gamma@{width:g}"] = neck.active_bn().weight.abs().mean()
        if self.heads.neck_feat == "before":  # "features" is then the pooled backbone output
            d[f"pool_feat_norm@{width:g}"] = out["features"].float().norm(dim=1).mean()
        d[f"feat_norm@{width:g}"] = out["neck_feat"].float().norm(dim=1).mean()
        if logits is not None:
            d[f"logit_std@{width:g}"] = logits.float().std(dim=1).mean()
        d["classifier_norm"] = self.heads.weight.float().norm(dim=1).mean()
        for name, value in (extra or {}).items():
            d[f"{name}@{width:g}"] = value
