"""The training-numerics fingerprint: a short reference computation through the real training
code, whose numbers change when the code that decides a run's numbers changes.

A run record holds these numbers (``numerics`` in its effective config), so a record made by
other training code is not reused, whatever its config says. They are computed from the run's
own config on a tiny set-up: 64 generated 24×12 images of 16 identities through the real
train loader (transforms, identity sampler, per-position seeding) at input 32×16, batches of
8; the model, losses, compatible loss, aggregation, optimizer and warm-up the config selects,
built from torch seed 0 without pretrained weights (weights are inputs, compared by checksum);
three steps of :class:`TaskGradientTrainer` on one CPU thread, in the precision the config
gives on the CPU (fp32 for AMP in float16, which the CPU does not run: the CUDA fp16 /
GradScaler path of a ``.cuda.json`` record is not fingerprinted, only its fp32 numerics). The
classifier is first scaled so the largest logit of the first batch is 3 × the evidential
LOGIT_CLAMP: saturated logits are part of what long training meets, and the clamp's gradient
acts only there. Finally :func:`evaluate_compatibility` scores fixed random features.

Recorded, per step: each task's loss and gradient norm, the cosine of each task pair, the
update's norm per parameter group; then how far each group moved, how far the BatchNorm
statistics moved, and the evaluation's mAP / R1 / mINP. Code that does not change these
numbers (docs, logging, refactors) leaves a record valid; a numerics change shows in several
of them. CPUs round differently, so numbers are compared with a tolerance (:func:`differences`),
never as bits.
"""
from __future__ import annotations

import copy
import math
import os
import random
import tempfile
from contextlib import contextmanager
from typing import Dict, Iterator, List

import numpy as np
import torch
from PIL import Image

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage

from ..data.loaders import train_loader_from_items
from ..evaluation.compatibility_evaluator import evaluate_compatibility
from ..fastreid.checkpoint import SFSCCheckpointer
from ..modeling.meta_arch.old_model import old_model_config
from ..modeling.switchable import width_context
from .aggregation import build_aggregation
from .task_step import TaskGradientTrainer
from .trainer import SFSCTrainer, amp_settings

__all__ = ["TOLERANCE", "LATE_TOLERANCE", "STEPS", "reference_numbers", "differences"]

STEPS = 3
IDENTITIES, IMAGES_PER_IDENTITY, BATCH, INSTANCES = 16, 4, 8, 2
#: Relative for losses and norms, absolute for cosines and metrics. The first step and the
#: evaluation are nearly exact: another SIMD path or thread count moves them by < 1e-5
#: (tests/test_numerics.py), while the logit clamp's one-sided gradient moved SFSC's first-step
#: gradient norms by 6e-2 (the loss as printed: 1e-3). From the second step on, rounding is
#: amplified (Adam's first step is ±lr on every component, whatever its size): up to 1e-3
#: measured, so those numbers only catch changes of a percent (an optimizer, a schedule).
TOLERANCE, LATE_TOLERANCE = 1e-4, 1e-2
ABSOLUTE_FLOOR = 1e-9  # below it two numbers are the same zero
_DIGITS = 7
_CACHE: Dict[str, Dict[str, float]] = {}


def _tiny(cfg):
    """The run's config at the reference's size, on the CPU, with no input files."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SEED = 0
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = IDENTITIES
    cfg.SFSC.DENSE_INIT.WEIGHTS = ""
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.SOLVER.IMS_PER_BATCH = BATCH
    cfg.DATALOADER.NUM_INSTANCE = INSTANCES
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg


@contextmanager
def _isolated(threads: int = 1) -> Iterator[None]:
    """Global RNGs and thread count as the caller had them, whatever happens inside."""
    py_state, np_state, count = random.getstate(), np.random.get_state(), torch.get_num_threads()
    torch.set_num_threads(threads)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        torch.set_num_threads(count)
        random.setstate(py_state)
        np.random.set_state(np_state)


def _images(folder: str) -> List[tuple]:
    rng = np.random.default_rng(0)
    items = []
    for pid in range(IDENTITIES):
        colour = rng.integers(0, 256, 3)
        for k in range(IMAGES_PER_IDENTITY):
            pixels = np.clip(colour + rng.normal(0, 40, (24, 12, 3)), 0, 255).astype(np.uint8)
            path = os.path.join(folder, f"{pid:04d}_c{k % 2 + 1}_{k}.png")
            Image.fromarray(pixels).save(path)
            items.append((path, pid, k % 2))
    return items


def _group(name: str) -> str:
    # Backbone stages and head parts: a change confined to one of them shows there.
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("backbone", "heads") else parts[0]


def _group_norms(vector: torch.Tensor, spans, groups: List[str], prefix: str
                 ) -> Dict[str, float]:
    squares: Dict[str, float] = {}
    for (a, b), group in zip(spans, groups):
        squares[group] = squares.get(group, 0.0) + float(vector[a:b].double().square().sum())
    return {f"{prefix}/{g}": math.sqrt(v) for g, v in squares.items()}


def _scale_classifier(model, batch, clamp: float) -> None:
    with torch.no_grad():
        probe = copy.deepcopy(model)  # its BatchNorm statistics move, not the model's
        images = probe.preprocess_image(batch)
        with width_context(probe, probe.train_width):
            logits = probe.heads(probe.backbone(images), batch["targets"])["pred_class_logits"]
        model.heads.weight.mul_(3.0 * clamp / float(logits.abs().max()))


def _old_model(cfg, folder: str) -> None:
    old = build_model(old_model_config(cfg))
    SFSCCheckpointer(old, save_dir=folder).save("old_model")
    cfg.SFSC.OLD_MODEL.WEIGHTS = os.path.join(folder, "old_model.pth")


def _compute(cfg) -> Dict[str, float]:
    out: Dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        np.random.seed(0)  # FastReID's identity sampler draws its seed from numpy
        loader = train_loader_from_items(cfg, _images(folder))
        stream = iter(loader)
        batches = [next(stream) for _ in range(STEPS)]
        if cfg.SFSC.OLD_MODEL.WEIGHTS:
            torch.manual_seed(1)
            _old_model(cfg, folder)
        torch.manual_seed(0)
        model = build_model(cfg)
        optimizer, wrapper = SFSCTrainer.build_optimizer(cfg, model)
        schedulers = SFSCTrainer.build_lr_scheduler(cfg, optimizer, 1000)
        amp_dtype, scaler = amp_settings(cfg, model.device)
        # One epoch per step, so that a KL weight annealed over epochs acts within the steps.
        model.iters_per_epoch = 1
        trainer = _ReferenceTrainer(model, batches, optimizer, wrapper,
                                    build_aggregation(cfg, 0), amp_dtype,
                                    cfg.SFSC.MAX_NONFINITE_STEPS, scaler)
        _scale_classifier(model, batches[0], cfg.SFSC.EVIDENTIAL.LOGIT_CLAMP)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        start = [p.detach().clone() for p in params]
        buffers = [b.detach().clone().double() for b in model.buffers() if b.is_floating_point()]
        with EventStorage(0):
            for step in range(STEPS):
                trainer.iter = step
                trainer.run_step()
                out.update(trainer.numbers(step))
                if "warmup_sched" in schedulers:
                    schedulers["warmup_sched"].step()
        moved = torch.cat([(p.detach() - s).reshape(-1) for p, s in zip(params, start)])
        out.update(_group_norms(moved, trainer.task_grads.spans, trainer.groups, "after/moved"))
        now = [b.detach().double() for b in model.buffers() if b.is_floating_point()]
        out["after/moved/batchnorm_statistics"] = math.sqrt(
            sum(float((b - s).square().sum()) for b, s in zip(now, buffers)))
    out.update(_evaluation())
    return {k: float(f"{v:.{_DIGITS}g}") for k, v in out.items()}


class _ReferenceTrainer(TaskGradientTrainer):
    """The real step, on a list of batches, with the numbers read after each step."""

    def numbers(self, step: int) -> Dict[str, float]:
        """Step ``step``'s task losses, gradient norms and cosines, update norm per group."""
        if not hasattr(self, "groups"):
            names = {id(p): n for n, p in self.model.named_parameters()}
            self.groups = [_group(names[id(p)]) for p in self.task_grads.params]
        gram = self.layer_gram(self.task_grads.grads).sum(0)
        out = {}
        for t, name in enumerate(self.task_names):
            out[f"step{step}/loss/{name}"] = float(self.task_grads.losses[t])
            out[f"step{step}/norm/{name}"] = math.sqrt(float(gram[t, t]))
            for u in range(t + 1, len(self.task_names)):
                den = math.sqrt(float(gram[t, t] * gram[u, u])) or 1.0
                out[f"step{step}/cos/{name}~{self.task_names[u]}"] = float(gram[t, u]) / den
        out.update(_group_norms(self.task_grads.flat, self.task_grads.spans, self.groups,
                                f"step{step}/update"))
        return out


def _evaluation() -> Dict[str, float]:
    rng = np.random.default_rng(0)
    q_pids, g_pids = np.arange(40) % 10, np.arange(120) % 10
    q_cams, g_cams = np.zeros(40, dtype=np.int64), np.ones(120, dtype=np.int64)
    centres = rng.normal(size=(10, 16))
    query = {w: (centres[q_pids] + rng.normal(scale=s, size=(40, 16))).astype(np.float32)
             for w, s in ((0.5, 1.2), (1.0, 0.8))}
    gallery = {w: (centres[g_pids] + rng.normal(scale=s, size=(120, 16))).astype(np.float32)
               for w, s in ((0.5, 1.2), (1.0, 0.8))}
    result = evaluate_compatibility(query, gallery, q_pids, q_cams, g_pids, g_cams,
                                    backend="torch").to_json()
    return {f"eval/{m}/q{i}_g{j}": result[m][i][j] / 100.0 for m in ("mAP", "R1", "mINP")
            for i in range(2) for j in range(2)}


def reference_numbers(cfg) -> Dict[str, float]:
    """The fingerprint of the training code ``cfg`` selects: ``{name: number}`` (see above).

    About a second per distinct config on one thread, cached; ``cfg`` is not changed."""
    tiny = _tiny(cfg)
    key = tiny.dump()
    if key not in _CACHE:
        with _isolated():
            _CACHE[key] = _compute(tiny)
    return dict(_CACHE[key])


def _close(name: str, a: float, b: float) -> bool:
    tol = TOLERANCE if name.startswith(("step0/", "eval/")) else LATE_TOLERANCE
    if "/cos/" in name or name.startswith("eval/"):  # in [-1, 1]: absolute
        return abs(a - b) <= tol
    # The floor: a quantity that is 0 in one record and rounding noise in another matches.
    return abs(a - b) <= max(tol * max(abs(a), abs(b)), ABSOLUTE_FLOOR)


def differences(recorded: Dict[str, float], current: Dict[str, float]) -> List[str]:
    """``name: recorded -> current`` for every number beyond the tolerance (or only on one
    side), largest relative change first."""
    rows = []
    for name in sorted(set(recorded) | set(current)):
        a, b = recorded.get(name), current.get(name)
        if a is None or b is None or not _close(name, a, b):
            change = math.inf if a is None or b is None else abs(a - b) / max(abs(a), abs(b))
            rows.append((change, f"{name}: {a} -> {b}"))
    return [text for _, text in sorted(rows, key=lambda r: -r[0])]
