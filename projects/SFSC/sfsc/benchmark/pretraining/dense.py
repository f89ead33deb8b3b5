"""Dense pretraining for the synthetic testbed, where ImageNet is not at hand: train torchvision's
network (ResNet-18 by default) once to classify the identities of a corpus of its own
(:mod:`.corpus`), and write its weights as torchvision does, without the classifier.

Every switchable backbone of that architecture loads the file into every width
(``MODEL.BACKBONE.PRETRAIN True MODEL.BACKBONE.PRETRAIN_PATH <file>``). The file is named
``<arch>-<first 8 digits of its SHA-256>.pth`` like torch hub's, so the resolver checks it.

A run lives in ``<output root>/<arch>-<key>/``, ``key`` a hash of every parameter that changes the
result (corpus and training): a finished one (``manifest.json``) is reused as it is, an
interrupted one continues from its last ``checkpoint.pth``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torchvision import models as tvm

from fastreid.config import get_cfg

from ...data.synthetic import GENERATOR_VERSION, read_manifest
from ...modeling.backbones.pretrained import PretrainedWeightsError, verify_checksum
from .corpus import CORPUS_SEED, CorpusBatches, corpus_params, ensure_corpus, load_corpus

__all__ = ["PretrainParams", "PretrainResult", "CLASSIFIERS", "pretrain", "run_folder"]

logger = logging.getLogger(__name__)

#: Bump when training changes in a way the parameters do not show, to retrain cached runs.
PRETRAIN_VERSION = 1
CHECKPOINT = "checkpoint.pth"
MANIFEST = "manifest.json"
#: torchvision architectures with a switchable twin, and the prefix of their classifier.
CLASSIFIERS = {"resnet18": "fc.", "resnet34": "fc.", "resnet50": "fc.",
               "mobilenet_v2": "classifier.", "shufflenet_v2_x1_0": "fc."}


@dataclass(frozen=True)
class PretrainParams:
    """Everything that changes the pretrained weights. Sizes in pixels, (height, width)."""

    arch: str = "resnet18"
    num_ids: int = 1000  # corpus identities (= classes); at most 1501
    images_per_id: Tuple[int, int] = (14, 20)
    corpus_seed: int = CORPUS_SEED
    image_size: Tuple[int, int] = (64, 32)  # the synthetic configs' INPUT.SIZE_TRAIN
    padding: int = 5
    batch_size: int = 64
    steps: int = 4000  # 0.34-0.38 s each on one thread (64x32, batch 64): 24 min in all
    base_lr: float = 0.05  # SGD, Nesterov momentum 0.9; linear warm-up, then cosine to 0
    warmup_steps: int = 50
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0  # initialisation, data order, augmentation

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def validate(self) -> None:
        """Raise ValueError for parameters that cannot be trained (and say which)."""
        if self.arch not in CLASSIFIERS:
            raise ValueError(f"arch {self.arch!r} is not one of {sorted(CLASSIFIERS)}")
        corpus_params(self.num_ids, self.images_per_id).validate()
        if min(self.steps, self.batch_size, *self.image_size) < 1 or self.warmup_steps < 0:
            raise ValueError("steps, batch size and image size must be positive, warm-up >= 0")

    def corpus_key(self) -> str:
        """12 hex digits identifying the corpus (generator version, its parameters, seed)."""
        corpus = corpus_params(self.num_ids, self.images_per_id).to_dict()
        return _digest({"generator": GENERATOR_VERSION, "seed": self.corpus_seed,
                        "params": corpus})

    def key(self) -> str:
        """12 hex digits identifying the run: the corpus and every training parameter."""
        return _digest({"version": PRETRAIN_VERSION, "corpus": self.corpus_key(),
                        "params": self.to_dict()})


@dataclass
class PretrainResult:
    path: str  # the weights file, torchvision's layout without the classifier
    manifest: Dict[str, Any]
    cached: bool  # reused a finished run


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def run_folder(output_root: str, params: PretrainParams) -> str:
    """Where the run of ``params`` lives."""
    return os.path.join(output_root, f"{params.arch}-{params.key()}")


def _lr(p: PretrainParams, step: int) -> float:
    if step < p.warmup_steps:
        return p.base_lr * (step + 1) / p.warmup_steps
    done = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
    return p.base_lr * 0.5 * (1 + math.cos(math.pi * done))


def _atomic_save(obj, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _finished(folder: str, key: str) -> Optional[PretrainResult]:
    manifest = read_manifest(folder)
    if not manifest or manifest.get("key") != key:
        return None
    path = os.path.join(folder, manifest.get("weights", ""))
    try:
        verify_checksum(path)
    except (PretrainedWeightsError, OSError) as e:
        logger.warning(f"Cached pretraining in {folder} is unusable ({e}); training again")
        return None
    return PretrainResult(path, manifest, cached=True)


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def _write_weights(model: torch.nn.Module, p: PretrainParams, folder: str) -> Tuple[str, str]:
    """The backbone's state dict without the classifier as <arch>-<sha256[:8]>.pth; (path, sha)."""
    prefix = CLASSIFIERS[p.arch]
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}
    tmp = os.path.join(folder, "weights.tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    path = os.path.join(folder, f"{p.arch}-{sha[:8]}.pth")
    os.replace(tmp, path)
    return path, sha


def pretrain(p: PretrainParams, output_root: str, datasets_root: str,
             checkpoint_period: int = 50, log_period: int = 10,
             on_step: Optional[Callable[[int], None]] = None) -> PretrainResult:
    """Pretrain ``p`` (or reuse its finished run, or continue its interrupted one).

    ``on_step(step)`` runs after each step and its checkpoint (progress reports; tests stop a
    run with it). The checkpoint period does not change the result, so it is not in the key.
    """
    p.validate()
    key, folder = p.key(), run_folder(output_root, p)
    done = _finished(folder, key)
    if done is not None:
        logger.info(f"Pretraining {key} is cached: {done.path}")
        return done
    os.makedirs(folder, exist_ok=True)
    corpus_dir = ensure_corpus(datasets_root, corpus_params(p.num_ids, p.images_per_id),
                               p.corpus_seed, p.corpus_key())
    start = time.perf_counter()
    images, labels = load_corpus(corpus_dir, p.image_size)
    classes = int(labels.max()) + 1
    took = time.perf_counter() - start
    logger.info(f"Corpus {corpus_dir}: {len(labels)} images of {classes} identities at "
                f"{p.image_size[0]}x{p.image_size[1]} (loaded in {took:.1f} s)")
    pixels = get_cfg().MODEL
    batches = CorpusBatches(images, labels, p.batch_size, p.seed, p.padding, pixels.PIXEL_MEAN,
                            pixels.PIXEL_STD)
    torch.manual_seed(p.seed)
    model = tvm.get_model(p.arch, num_classes=classes)
    decay = [q for n, q in model.named_parameters() if q.ndim > 1]
    no_decay = [q for n, q in model.named_parameters() if q.ndim <= 1]  # BN and biases
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": p.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=p.base_lr, momentum=0.9, nesterov=True)
    ckpt_path, step = os.path.join(folder, CHECKPOINT), 0
    if os.path.isfile(ckpt_path):
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("key") == key:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
            logger.info(f"Resuming pretraining {key} at step {step}/{p.steps}")
    model.train()
    window, seen, correct, tic = [], 0, 0, time.perf_counter()
    first = step
    while step < p.steps:
        x, y = batches(step)
        for group in optimizer.param_groups:
            group["lr"] = _lr(p, step)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=p.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window.append(float(loss.detach()))
        seen, correct = seen + len(y), correct + int((logits.argmax(1) == y).sum())
        if step % checkpoint_period == 0 and step < p.steps:
            _atomic_save({"key": key, "step": step, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict()}, ckpt_path)
        if step % log_period == 0 or step == p.steps:
            per_step = (time.perf_counter() - tic) / (step - first)
            logger.info(f"step {step}/{p.steps}  loss {sum(window) / len(window):.3f}  "
                        f"train acc {100 * correct / seen:.1f}%  lr {_lr(p, step - 1):.4f}  "
                        f"{per_step:.2f} s/step  ETA {_fmt(per_step * (p.steps - step))}")
            window, seen, correct = [], 0, 0
        if on_step is not None:
            on_step(step)
    path, sha = _write_weights(model, p, folder)
    manifest = {"key": key, "params": p.to_dict(), "corpus": corpus_dir,
                "corpus_key": p.corpus_key(), "classes": classes, "images": len(labels),
                "weights": os.path.basename(path), "sha256": sha}
    with open(os.path.join(folder, MANIFEST), "w") as f:  # last: marks the run finished
        json.dump(manifest, f, indent=1, sort_keys=True)
    if os.path.exists(ckpt_path):
        os.remove(ckpt_path)
    logger.info(f"Pretrained weights: {path}")
    return PretrainResult(path, manifest, cached=False)
