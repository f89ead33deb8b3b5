"""Train and test loaders: FastReID's datasets, samplers and transforms, made safe and resumable.

On top of ``fastreid.data.build`` this adds what a long run on real data needs:
- a missing or misplaced dataset folder, an unknown dataset name, or a train set too small for
  the identity sampler is a :class:`DatasetError` that says what was expected where;
- unreadable images (missing, empty, truncated, not an image) are screened out before training
  with a warning and a count, or stop it (``SFSC.DATA.BAD_IMAGES fail``);
- every training sample is drawn and augmented from a seed fixed by its position in the sample
  stream, so ``--resume`` replays exactly the batches an uninterrupted run would have seen and
  two runs with one seed are identical, whatever the number of loader workers.
"""
from __future__ import annotations

import difflib
import logging
import os
import random
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Sampler

import fastreid.data.build as data_build
from fastreid.data.common import CommDataset
from fastreid.data.data_utils import read_image
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.utils import comm

from .errors import DatasetError

__all__ = ["LAYOUTS", "dataset_root", "load_dataset", "image_problem", "ReIDImageDataset",
           "PositionedSampler", "build_train_loader", "train_loader_from_items",
           "build_test_loader", "positioned_sampler"]

logger = logging.getLogger(__name__)

#: Where FastReID's loaders look for the datasets users download, under FASTREID_DATASETS.
LAYOUTS: Dict[str, str] = {
    "Market1501": "Market-1501-v15.09.15/{bounding_box_train, query, bounding_box_test}",
    "MSMT17": "MSMT17_V2/{mask_train_v2, mask_test_v2, list_train.txt, list_val.txt, "
              "list_query.txt, list_gallery.txt} (or MSMT17_V1/{train, test, list_*.txt})",
    "VeRi": "veri/{image_train, image_query, image_test} (lower case: rename the unpacked VeRi)",
    "DukeMTMC": "DukeMTMC-reID/{bounding_box_train, query, bounding_box_test}",
}
_SPLITS = {"train": ("train",), "test": ("query", "gallery")}
_READ_ERRORS = (OSError, ValueError, SyntaxError, UnidentifiedImageError)


def dataset_root() -> str:
    """The dataset root FastReID reads (FASTREID_DATASETS when it was imported, else datasets)."""
    return data_build._root  # read at use: FastReID fixes it from FASTREID_DATASETS at import


def _missing_dataset(name: str, cause: Exception) -> DatasetError:
    root = os.path.abspath(dataset_root())
    layout = LAYOUTS.get(name, "the layout its FastReID dataset class reads")
    return DatasetError(
        f"Dataset {name}: {cause}. FastReID looks for datasets under the folder named by the "
        f"FASTREID_DATASETS environment variable (now {root}; default ./datasets). Expected "
        f"{os.path.join(root, layout)}. Download and unpack the dataset there, or point "
        "FASTREID_DATASETS at the folder that holds it.")


def load_dataset(name: str, cfg, split: str):
    """A FastReID dataset by registry name, its ``split`` ('train' | 'test') lists screened.

    Raises DatasetError for an unknown name, a missing folder or an empty split.
    """
    try:
        cls = DATASET_REGISTRY.get(name)
    except KeyError:
        known = sorted(DATASET_REGISTRY._obj_map)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"Unknown dataset {name!r} in DATASETS.NAMES / DATASETS.TESTS.{hint} "
                           f"Registered datasets: {', '.join(known)}.") from None
    kwargs = cls.config_kwargs(cfg) if hasattr(cls, "config_kwargs") else {}
    if split == "train":
        kwargs["combineall"] = cfg.DATASETS.COMBINEALL
    try:
        data = cls(root=dataset_root(), **kwargs)  # FastReID parses the train list here already
        lists = {s: getattr(data, s) for s in _SPLITS[split]}
    except DatasetError:
        raise
    except (RuntimeError, FileNotFoundError) as e:  # check_before_run: "'<dir>' is not found"
        raise _missing_dataset(name, e) from None
    except (AttributeError, ValueError, IndexError, KeyError, OSError) as e:
        # FastReID's parsers assume their naming: a stray file fails a regex or a split.
        raise _missing_dataset(name, f"a file or list entry does not follow its naming ({e!r})"
                               ) from None
    for s, items in lists.items():
        if not items:
            raise _missing_dataset(name, f"its {s} set holds no images (wrong layout or names?)")
        setattr(data, f"_{s}", screen_images(items, f"{name} {s}", cfg.SFSC.DATA.BAD_IMAGES))
    return data


def image_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a training image (missing, empty, truncated...), or None if fine.

    Cheap: reads the header and, for JPEG, the end-of-image marker; not a full decode.
    """
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as img:
            fmt = img.format
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(-2, os.SEEK_END)
                if f.read(2) != b"\xff\xd9":
                    return "truncated JPEG (no end-of-image marker)"
    except FileNotFoundError:
        return "file not found"
    except _READ_ERRORS as e:
        return f"not a readable image ({e})"
    return None


# path -> (size, mtime) of images found readable: every evaluation lists the test set again,
# and an image unchanged since its last check need not be opened again.
_READABLE: Dict[str, Tuple[int, int]] = {}


def _cached_problem(path: str) -> Optional[str]:
    try:
        stat = os.stat(path)
    except OSError:
        return image_problem(path)
    stamp = (stat.st_size, stat.st_mtime_ns)
    if _READABLE.get(path) == stamp:
        return None
    why = image_problem(path)
    if why is None:
        _READABLE[path] = stamp
    return why


def screen_images(items: List[tuple], where: str, policy: str) -> List[tuple]:
    """``items`` without unreadable images: warns with a count ('skip'), or raises ('fail')."""
    bad = [(item[0], why) for item in items if (why := _cached_problem(item[0])) is not None]
    if not bad:
        return items
    listing = "; ".join(f"{p}: {why}" for p, why in bad[:5]) + (" ..." if len(bad) > 5 else "")
    if policy == "fail":
        raise DatasetError(f"{len(bad)} of {len(items)} images of {where} cannot be read: "
                           f"{listing}. Replace or delete them, or set SFSC.DATA.BAD_IMAGES skip "
                           "to train without them.")
    logger.warning(f"Skipped {len(bad)} unreadable images of {len(items)} in {where}: {listing}")
    bad_paths = {p for p, _ in bad}
    return [item for item in items if item[0] not in bad_paths]


class ReIDImageDataset(CommDataset):
    """FastReID's CommDataset, indexed by an int or by ``(position, index)``.

    A ``(position, index)`` key (from :class:`PositionedSampler`) augments the image under a seed
    derived from ``seed`` and the position, and restores the global RNGs afterwards.
    """

    def __init__(self, img_items, transform=None, relabel: bool = True, seed: int = 0):
        super().__init__(img_items, transform, relabel)
        self.seed = int(seed)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self._load(key)
        position, index = key
        sample_seed = int(np.random.SeedSequence([self.seed, comm.get_rank(), position])
                          .generate_state(1)[0])
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                random.seed(sample_seed)
                np.random.seed(sample_seed)
                torch.manual_seed(sample_seed)
                return self._load(index)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    def _load(self, index: int) -> dict:
        path, pid, camid = self.img_items[index][:3]
        try:
            img = read_image(path)
        except _READ_ERRORS as e:  # screened at start-up: the file changed since
            raise DatasetError(f"Cannot read image {path}: {e}. It was readable when training "
                               "started; replace the file and resume with --resume.") from None
        if self.transform is not None:
            img = self.transform(img)
        if self.relabel:
            pid, camid = self.pid_dict[pid], self.cam_dict[camid]
        return {"images": img, "targets": pid, "camids": camid, "img_paths": path}


class PositionedSampler(Sampler):
    """Wraps an infinite index sampler: yields ``(position, index)`` from position ``start``."""

    def __init__(self, sampler: Sampler, start: int = 0):
        self.sampler, self.start = sampler, int(start)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        stream = iter(self.sampler)
        for _ in range(self.start):  # indices only: cheap next to loading images
            next(stream)
        yield from enumerate(stream, self.start)


def _check_identities(train_set: CommDataset, cfg) -> None:
    if cfg.DATALOADER.SAMPLER_TRAIN not in ("NaiveIdentitySampler", "BalancedIdentitySampler",
                                            "SetReWeightSampler"):
        return
    per_process = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
    needed = per_process // cfg.DATALOADER.NUM_INSTANCE
    if train_set.num_classes < needed:  # the sampler would wait forever for a full batch
        raise DatasetError(
            f"The train set has {train_set.num_classes} identities, but "
            f"{cfg.DATALOADER.SAMPLER_TRAIN} draws {needed} per batch (SOLVER.IMS_PER_BATCH "
            f"{cfg.SOLVER.IMS_PER_BATCH} / {comm.get_world_size()} processes / "
            f"DATALOADER.NUM_INSTANCE {cfg.DATALOADER.NUM_INSTANCE}). Lower SOLVER.IMS_PER_BATCH "
            "or raise DATALOADER.NUM_INSTANCE, or add identities.")
    if len(train_set) < per_process:
        raise DatasetError(f"The train set has {len(train_set)} images, fewer than one batch "
                           f"of {per_process}: lower SOLVER.IMS_PER_BATCH.")


def build_train_loader(cfg):
    """FastReID's train loader over DATASETS.NAMES, with the checks and seeding above."""
    items: List[tuple] = []
    for name in cfg.DATASETS.NAMES:
        data = load_dataset(name, cfg, "train")
        if comm.is_main_process():
            data.show_train()
        items.extend(data.train)
    return train_loader_from_items(cfg, items)


def train_loader_from_items(cfg, items: List[tuple]):
    """The train loader of ``items`` ((path, pid, camid) tuples): transforms, sampler, seeding."""
    seed = cfg.SEED if cfg.SEED >= 0 else 0
    train_set = ReIDImageDataset(items, build_transforms(cfg, is_train=True), relabel=True,
                                 seed=seed)
    _check_identities(train_set, cfg)
    # FastReID picks and configures the sampler (its seed: numpy's, seeded from SEED).
    sampler = data_build._train_loader_from_config(cfg, train_set=train_set)["sampler"]
    if cfg.SFSC.DATA.RESUMABLE:
        sampler = PositionedSampler(sampler)
    return data_build.build_reid_train_loader(
        train_set=train_set, sampler=sampler, total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        num_workers=cfg.DATALOADER.NUM_WORKERS)


def build_test_loader(cfg, dataset_name: str):
    """(loader, num_query) over one test set: query images first, then the gallery."""
    data = load_dataset(dataset_name, cfg, "test")
    if comm.is_main_process():
        data.show_test()
    test_set = ReIDImageDataset(data.query + data.gallery, build_transforms(cfg, is_train=False),
                                relabel=False)
    loader, _ = data_build.build_reid_test_loader(
        test_set=test_set, test_batch_size=cfg.TEST.IMS_PER_BATCH, num_query=len(data.query),
        num_workers=cfg.DATALOADER.NUM_WORKERS)
    return loader, len(data.query)


def positioned_sampler(loader) -> Optional[PositionedSampler]:
    """The loader's PositionedSampler, or None when SFSC.DATA.RESUMABLE is off."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    return sampler if isinstance(sampler, PositionedSampler) else None

