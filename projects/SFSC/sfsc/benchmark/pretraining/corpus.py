"""The pretraining corpus of the synthetic testbed: its own identities, as images in memory, and
the augmented batch of every training step.

The corpus is drawn by the synthetic ReID generator with :data:`CORPUS_SEED` instead of the
benchmark datasets' seed 0, and only as training identities. What "disjoint" means here: no
person of the corpus is a person of any benchmark split (every identity attribute is a fresh
draw of another random stream; the test checks that none coincides), and no image is shared
(other cameras and backgrounds too). The *distribution* is the same generator's, as ImageNet and
Market-1501 share natural images: pretraining teaches what people in these scenes look like,
never who the benchmark's people are.

Batches are a pure function of the step number (epoch permutations and augmentation seeded by
position), so a resumed run continues with exactly the batches an uninterrupted one would see.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...data.datasets import parse_name
from ...data.layout import TRAIN_DIR
from ...data.params import SYNTHETIC_REID, GenerationParams
from ...data.synthetic import ensure_synthetic_reid

__all__ = ["CORPUS_SEED", "corpus_params", "ensure_corpus", "load_corpus", "CorpusBatches"]

#: Seed of the pretraining corpus; the benchmark datasets use 0 (SyntheticReID, ...Tiny).
CORPUS_SEED = 20230611


def corpus_params(num_ids: int, images_per_id: Tuple[int, int] = (14, 20)) -> GenerationParams:
    """The benchmark dataset's look with ``num_ids`` training identities and no test split."""
    return dataclasses.replace(SYNTHETIC_REID, num_train_ids=num_ids, num_test_ids=0,
                               num_distractors=0, images_per_id=tuple(images_per_id))


def ensure_corpus(root: str, params: GenerationParams, seed: int, key: str) -> str:
    """Generate (once) the corpus of ``(params, seed)`` under ``root``; its folder."""
    return ensure_synthetic_reid(os.path.join(root, f"SyntheticPretrain-{key}"), params, seed,
                                 name="pretraining corpus")


def load_corpus(folder: str, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every training image resized to ``size`` (h, w): uint8 (N, 3, h, w), labels (N,) 0..K-1."""
    train = os.path.join(folder, TRAIN_DIR)
    names = sorted(n for n in os.listdir(train) if n.endswith(".jpg"))
    pids = sorted({parse_name(n)[0] for n in names})
    label: Dict[int, int] = {pid: i for i, pid in enumerate(pids)}
    h, w = size
    images = torch.empty(len(names), 3, h, w, dtype=torch.uint8)
    for i, name in enumerate(names):
        with Image.open(os.path.join(train, name)) as img:
            arr = np.asarray(img.convert("RGB").resize((w, h), Image.BICUBIC))
        images[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    labels = torch.tensor([label[parse_name(n)[0]] for n in names])
    return images, labels


class CorpusBatches:
    """Batch ``step`` of an endless, epoch-shuffled pass over the corpus, augmented.

    Augmentation as the ReID configs': horizontal flip, zero padding + random crop. Images are
    normalised with FastReID's pixel mean / std (ImageNet's), which the ReID model applies too.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 padding: int, mean, std):
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.padding = batch_size, seed, padding
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._epoch, self._order = -1, None

    def _generator(self, *position: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.seed, *position]).generate_state(1)[0])
        return torch.Generator().manual_seed(seed)

    def _indices(self, step: int) -> torch.Tensor:
        n = len(self.labels)
        out = []
        for position in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch = position // n
            if epoch != self._epoch:
                self._epoch = epoch
                self._order = torch.randperm(n, generator=self._generator(0, epoch))
            out.append(int(self._order[position % n]))
        return torch.tensor(out)

    def __call__(self, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(normalised images (B, 3, h, w) float32, labels (B,)) of training step ``step``."""
        idx = self._indices(step)
        x = self.images[idx].float()
        g = self._generator(1, step)
        flip = torch.rand(len(idx), generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        p = self.padding
        if p > 0:
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (len(idx),), generator=g)
            dx = torch.randint(0, 2 * p + 1, (len(idx),), generator=g)
            x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
                             for i in range(len(idx))])
        return (x - self.mean) / self.std, self.labels[idx]
