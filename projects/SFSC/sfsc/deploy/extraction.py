"""Features of many image files, batched, with progress, skipping (or refusing) unreadable files."""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..fastreid.checkpoint import atomic_write_bytes
from ..modeling.switchable import width_context
from .errors import DeployError
from .loading import LoadedModel, check_width, checkpoint_id
from .preprocessing import Preprocessing, image_to_input, load_rgb
from .runtime import ExportedModel

logger = logging.getLogger(__name__)

__all__ = ["Encoder", "switchable_info", "switchable_encoder", "exported_encoder", "extract_files",
           "ExtractionResult", "save_features"]


class Encoder(NamedTuple):
    """How one model turns images into features, and what to record about it."""

    transform: Callable[[Image.Image], np.ndarray]  # RGB image -> (3, H, W) float32 0-255
    encode: Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) -> (N, D) float32, unit length
    model: dict  # kind, path(s), width
    preprocessing: dict


class ExtractionResult(NamedTuple):
    features: np.ndarray  # (N, D) float32, L2-normalised
    names: List[str]  # N names, row order
    skipped: List[Dict[str, str]]  # {"file": name, "error": message}


def _l2(feats: np.ndarray) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float32)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def switchable_info(loaded: LoadedModel, width: float, **extra) -> dict:
    """What feature files and indexes record of a switchable model at ``width``: the
    checkpoint (path and checksum, which names the network anywhere), config and width."""
    return {"kind": "switchable", "checkpoint": loaded.weights,
            "checkpoint_sha256": checkpoint_id(loaded.weights), "config": loaded.config_file,
            "width": width, **extra}


def switchable_encoder(loaded: LoadedModel, width: float) -> Encoder:
    """The switchable model at ``width`` with FastReID's test transforms of its config."""
    from fastreid.data.transforms import build_transforms

    cfg, model = loaded.cfg, loaded.model
    width = check_width(model, width)
    if len(cfg.INPUT.SIZE_TEST) != 2:
        raise DeployError(f"INPUT.SIZE_TEST {list(cfg.INPUT.SIZE_TEST)} keeps each image's "
                          "aspect ratio, so images cannot be batched; set it to [H, W].")
    if cfg.TEST.FLIP.ENABLED:
        logger.warning("TEST.FLIP.ENABLED is ignored: features are those of the unflipped "
                       "images, as an exported model computes them.")
    transforms = build_transforms(cfg, is_train=False)

    def transform(image: Image.Image) -> np.ndarray:
        return transforms(image).numpy()

    @torch.no_grad()
    def encode(images: np.ndarray) -> np.ndarray:
        with width_context(model, width):
            feats = model(torch.from_numpy(images)).float()
        return F.normalize(feats, dim=1).numpy()

    spec = Preprocessing(*cfg.INPUT.SIZE_TEST, tuple(cfg.MODEL.PIXEL_MEAN),
                         tuple(cfg.MODEL.PIXEL_STD))
    return Encoder(transform, encode, switchable_info(loaded, width),
                   dict(spec.to_json(), transforms=repr(transforms).replace("\n", " ")))


def exported_encoder(exported: ExportedModel) -> Encoder:
    """An exported model with the preprocessing its JSON records."""
    info = {"kind": os.path.splitext(exported.path)[1].lstrip("."), "path": exported.path,
            "width": exported.info.get("width"), "source": exported.info.get("source")}
    # normalised here whatever the JSON says: a raw-feature export gives unit vectors too
    return Encoder(functools.partial(image_to_input, spec=exported.preprocessing),
                   lambda images: _l2(exported.run(images)), info,
                   exported.preprocessing.to_json())


def _decode(item: Tuple[str, str], transform) -> Tuple[Optional[np.ndarray], str]:
    try:
        return transform(load_rgb(item[1])), ""
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f"{type(e).__name__}: {e}"


class _Progress:
    def __init__(self, total: int, period: float = 5.0):
        self.total, self.period = total, period
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.period and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        logger.info(f"{done}/{self.total} images ({rate:.1f} img/s), ETA {eta:.0f} s")


def extract_files(images: Sequence[Tuple[str, str]], encoder: Encoder, batch_size: int = 64,
                  strict: bool = False, workers: int = 2) -> ExtractionResult:
    """Features of ``images`` ((name, path) pairs) in order; unreadable files are skipped and
    listed (``strict``: DeployError at the first one). ``workers`` threads decode images."""
    if batch_size < 1:
        raise DeployError(f"--batch-size must be at least 1, got {batch_size}.")
    feats: List[np.ndarray] = []
    names: List[str] = []
    skipped: List[Dict[str, str]] = []
    progress = _Progress(len(images))
    chunks = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    decode = functools.partial(_decode, transform=encoder.transform)
    pool = ThreadPoolExecutor(workers) if workers > 0 else None

    def submit(chunk):  # decoding of the next batch overlaps the model's work on this one
        return [pool.submit(decode, item) for item in chunk] if pool else chunk

    def collect(pending):
        return [f.result() for f in pending] if pool else [decode(item) for item in pending]

    try:
        pending = submit(chunks[0]) if chunks else []
        for k, chunk in enumerate(chunks):
            decoded = collect(pending)
            pending = submit(chunks[k + 1]) if k + 1 < len(chunks) else []
            batch = []
            for (name, path), (array, error) in zip(chunk, decoded):
                if array is None:
                    if strict:
                        raise DeployError(f"cannot read image {path} ({error}); without "
                                          "--strict unreadable images are skipped and listed.")
                    logger.warning(f"skipping {path}: {error}")
                    skipped.append({"file": name, "error": error})
                    continue
                batch.append(array)
                names.append(name)
            if batch:
                feats.append(encoder.encode(np.stack(batch)))
            progress.update(k * batch_size + len(chunk))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if not feats:
        raise DeployError(f"none of the {len(images)} images could be read (first error: "
                          f"{skipped[0]['error']}).")
    return ExtractionResult(np.concatenate(feats).astype(np.float32), names, skipped)


def save_features(output: str, result: ExtractionResult, encoder: Encoder, source: str
                  ) -> Tuple[str, str]:
    """Write ``output`` (.npy, (N, D) float32) and its index (.json beside it); their paths."""
    output = output if output.endswith(".npy") else output + ".npy"
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    index = {"features": os.path.basename(output), "shape": list(result.features.shape),
             "dtype": "float32", "l2_normalized": True, "source": os.path.abspath(source),
             "files": result.names, "skipped": result.skipped, "model": encoder.model,
             "preprocessing": encoder.preprocessing}
    atomic_write_bytes(output, lambda f: np.save(f, result.features))
    index_path = os.path.splitext(output)[0] + ".json"
    text = json.dumps(index, indent=2) + "\n"
    atomic_write_bytes(index_path, lambda f: f.write(text.encode()))
    return output, index_path
