"""CustomReID: train and test on your own images, described by a CSV file or a folder tree.

Set ``DATASETS.NAMES ("CustomReID",)`` and/or ``DATASETS.TESTS ("CustomReID",)`` and point
``SFSC.DATA.CUSTOM_PATH`` at the data; a relative path starts at the dataset root
(``FASTREID_DATASETS``, default ``datasets``). The path is either

* a CSV file whose header row names the columns ``path,pid,camid,split`` (in any order; other
  columns are ignored), one image per row::

      path,pid,camid,split
      images/alice_cam1_001.jpg,alice,cam1,train
      images/0007_a.jpg,7,1,query
      /data/cams/2/0007_b.jpg,7,2,gallery

  ``path`` is relative to the CSV file's folder or absolute; ``split`` is ``train``, ``query``
  or ``gallery``; ``pid`` (identity) and ``camid`` (camera) are any labels for training images
  and integers for query and gallery images; or
* a folder laid out as ``<split>/<pid>/<camid>/<image file>``, with split folders named
  ``train``, ``query`` and ``gallery`` (e.g. ``train/alice/cam1/001.jpg``,
  ``query/7/1/a.jpg``); files with the extensions in ``IMAGE_EXTENSIONS`` are read, others and
  hidden entries are skipped.

Training identities and cameras are prefixed with the dataset name (``custom_alice``) like
FastReID's own datasets, so they never merge with those of another training set. At test time,
each query is ranked against the gallery without the gallery images of its own identity taken
by its own camera, so every query identity needs a gallery image from another camera. Problems
with the data raise :class:`~sfsc.data.errors.DatasetError` naming the file (and line) to fix.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import Dict, List, Tuple, Union

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.bases import ImageDataset

from .errors import DatasetError

__all__ = ["CustomReID", "IMAGE_EXTENSIONS", "SPLITS", "custom_data_path"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")
COLUMNS = ("path", "pid", "camid", "split")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

Item = Tuple[str, Union[int, str], Union[int, str]]
_FORMAT = ("a CSV file with the header path,pid,camid,split or a folder laid out as "
           "<split>/<pid>/<camid>/<image> with split folders train, query and gallery")


def _label(value: str) -> str:
    """A training label as text; integers are normalised so that "07" and "7" stay one label."""
    try:
        return str(int(value))
    except ValueError:
        return value


def custom_data_path(root: str, path: str) -> str:
    """Where SFSC.DATA.CUSTOM_PATH ``path`` points: ``~`` expanded, relative to ``root``."""
    return os.path.join(root, os.path.expanduser(path))


@DATASET_REGISTRY.register()
class CustomReID(ImageDataset):
    """Your own ReID data from a CSV file or a <split>/<pid>/<camid>/<image> folder tree."""

    dataset_name = "custom"

    def __init__(self, root: str = "datasets", path: str = "", **kwargs):
        self.root = root
        if not path:
            raise DatasetError(
                "CustomReID needs to know where the data is, but SFSC.DATA.CUSTOM_PATH is empty: "
                f"set SFSC.DATA.CUSTOM_PATH to {_FORMAT} (a relative path starts at the dataset "
                f"root {root!r}, i.e. FASTREID_DATASETS).")
        self.path = path
        self.data_path = custom_data_path(root, path)
        if not os.path.exists(self.data_path):
            raise DatasetError(
                f"CustomReID: SFSC.DATA.CUSTOM_PATH {path!r} resolves to {self.data_path!r}, "
                "which does not exist. Fix the path (a relative path starts at the dataset root "
                f"{root!r}, i.e. FASTREID_DATASETS) or put the data there; it must be {_FORMAT}.")
        if os.path.isdir(self.data_path):
            items = self._read_folder(self.data_path)
        else:
            items = self._read_csv(self.data_path)
        self._warn_unmatched_queries(items["query"], items["gallery"])
        # Empty splits are reported when they are used, not here: a test-only data set is built
        # in FastReID's 'train' mode, and a train-only one may be tested on another data set.
        self._check_empty = False
        super().__init__(items["train"], items["query"], items["gallery"], **kwargs)
        self._check_empty = True

    @classmethod
    def config_kwargs(cls, cfg) -> Dict[str, str]:
        """The constructor arguments that come from the config."""
        return {"path": cfg.SFSC.DATA.CUSTOM_PATH}

    @property
    def train(self) -> List[Item]:
        """Training items: (image path, "custom_<pid>", "custom_<camid>")."""
        return self._nonempty("train", super().train)

    @property
    def query(self) -> List[Item]:
        """Query items: (image path, pid, camid) with integer labels."""
        return self._nonempty("query", super().query)

    @property
    def gallery(self) -> List[Item]:
        """Gallery items: (image path, pid, camid) with integer labels."""
        return self._nonempty("gallery", super().gallery)

    def _nonempty(self, split: str, items: List[Item]) -> List[Item]:
        if self._check_empty and not items:
            where = (f"no rows of {self.data_path!r} have split {split}"
                     if os.path.isfile(self.data_path) else
                     f"{os.path.join(self.data_path, split)!r} holds no images in "
                     "<pid>/<camid>/ folders")
            raise DatasetError(
                f"CustomReID has no {split} images: {where}. Add {split} images to the data set, "
                f"or use another data set for {'training' if split == 'train' else 'testing'} "
                f"(DATASETS.{'NAMES' if split == 'train' else 'TESTS'}).")
        return items

    def _item(self, img_path: str, pid: str, camid: str, split: str, where: str) -> Item:
        """One (path, pid, camid) item; ``where`` names the row or folder for error messages."""
        if split == "train":
            return img_path, f"{self.dataset_name}_{_label(pid)}", \
                f"{self.dataset_name}_{_label(camid)}"
        labels = []
        for name, value in (("pid", pid), ("camid", camid)):
            try:
                labels.append(int(value))
            except ValueError:
                raise DatasetError(
                    f"CustomReID: {where}: {split} images need an integer {name}, not "
                    f"{value!r}. Number the {split} identities and cameras with integers "
                    "(training images may use any labels).") from None
        return img_path, labels[0], labels[1]

    def _read_csv(self, csv_path: str) -> Dict[str, List[Item]]:
        """Items of every split from a CSV file with the columns path, pid, camid, split."""
        items: Dict[str, List[Item]] = {s: [] for s in SPLITS}
        base = os.path.dirname(os.path.abspath(csv_path))
        try:
            # utf-8-sig: spreadsheet programs often start the file with a byte order mark.
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                names = [h.strip().lower() for h in header] if header else []
                missing = [c for c in COLUMNS if c not in names]
                if missing or len(set(names)) != len(names):
                    raise DatasetError(
                        f"CustomReID: {csv_path!r}, line 1: the header row must name the "
                        f"columns {','.join(COLUMNS)}, found {','.join(header or [])!r}"
                        f"{' (missing ' + ', '.join(missing) + ')' if missing else ''}. "
                        f"Start the file with the line {','.join(COLUMNS)}, or point "
                        "SFSC.DATA.CUSTOM_PATH at a folder laid out as "
                        "<split>/<pid>/<camid>/<image>.")
                col = {c: names.index(c) for c in COLUMNS}
                for row in reader:
                    if not any(cell.strip() for cell in row):
                        continue
                    where = f"{csv_path!r}, line {reader.line_num}"
                    if len(row) != len(names):
                        raise DatasetError(
                            f"CustomReID: {where}: the row has {len(row)} fields, the header "
                            f"{len(names)}. Give every row the fields {','.join(names)} "
                            "(quote a path that contains commas).")
                    path, pid, camid, split = (row[col[c]].strip() for c in COLUMNS)
                    if split.lower() not in SPLITS:
                        raise DatasetError(
                            f"CustomReID: {where}: unknown split {split!r}. Set the split column "
                            f"to one of {', '.join(SPLITS)}.")
                    split = split.lower()
                    empty = [c for c, v in (("path", path), ("pid", pid), ("camid", camid))
                             if not v]
                    if empty:
                        raise DatasetError(
                            f"CustomReID: {where}: empty {', '.join(empty)}. Fill in every "
                            "column of the row, or delete it.")
                    img_path = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
                    if not os.path.isfile(img_path):
                        raise DatasetError(
                            f"CustomReID: {where}: image file {img_path!r} is missing. Fix the "
                            "path (relative paths start at the CSV file's folder) or delete the "
                            "row.")
                    items[split].append(self._item(img_path, pid, camid, split, where))
        except UnicodeDecodeError:
            raise DatasetError(
                f"CustomReID: {csv_path!r} is not a UTF-8 text file. SFSC.DATA.CUSTOM_PATH must "
                f"be {_FORMAT}.") from None
        except csv.Error as e:
            raise DatasetError(f"CustomReID: {csv_path!r} is not a readable CSV file ({e}). "
                               f"SFSC.DATA.CUSTOM_PATH must be {_FORMAT}.") from None
        return items

    def _read_folder(self, folder: str) -> Dict[str, List[Item]]:
        """Items of every split from a <split>/<pid>/<camid>/<image> folder tree."""
        items: Dict[str, List[Item]] = {s: [] for s in SPLITS}
        for split in _entries(folder):
            split_dir = os.path.join(folder, split)
            if not os.path.isdir(split_dir):
                continue  # a README or a CSV file beside the split folders
            if split not in SPLITS:
                raise DatasetError(
                    f"CustomReID: {split_dir!r} is not a split folder: the folders in "
                    f"{folder!r} must be named {', '.join(SPLITS)}, each holding "
                    "<pid>/<camid>/<image>. Rename or move that folder.")
            for pid in _entries(split_dir):
                pid_dir = os.path.join(split_dir, pid)
                if not os.path.isdir(pid_dir):
                    continue
                for camid in _entries(pid_dir):
                    cam_dir = os.path.join(pid_dir, camid)
                    if not os.path.isdir(cam_dir):
                        if camid.lower().endswith(IMAGE_EXTENSIONS):
                            raise DatasetError(
                                f"CustomReID: image {cam_dir!r} is not in a camera folder. "
                                "Images go into <split>/<pid>/<camid>/ folders: move it into "
                                "a folder named after its camera.")
                        continue
                    for name in _entries(cam_dir):
                        img_path = os.path.join(cam_dir, name)
                        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(img_path):
                            items[split].append(
                                self._item(img_path, pid, camid, split, repr(cam_dir)))
        return items

    @staticmethod
    def _warn_unmatched_queries(query: List[Item], gallery: List[Item]) -> None:
        """Log queries that no gallery image can match: they do not count in the metrics."""
        seen = {}
        for _, pid, camid in gallery:
            seen.setdefault(pid, set()).add(camid)
        unmatched = [p for p, pid, camid in query if not seen.get(pid, set()) - {camid}]
        if unmatched and gallery:
            logger.warning(f"CustomReID: {len(unmatched)} of {len(query)} query images have no "
                           "gallery image of their identity from another camera and are left "
                           f"out of the metrics, e.g. {unmatched[0]!r}.")


def _entries(folder: str) -> List[str]:
    """Sorted names in ``folder`` without hidden ones ('.DS_Store', '.ipynb_checkpoints')."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))
