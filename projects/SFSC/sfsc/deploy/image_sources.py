"""The images a feature-extraction run reads: a folder (recursively) or a list file."""
from __future__ import annotations

import os
from typing import List, Tuple

from .errors import DeployError

__all__ = ["IMAGE_EXTENSIONS", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _from_folder(folder: str) -> List[Tuple[str, str]]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(root, name)
                found.append((os.path.relpath(path, folder), path))
    return sorted(found)


def _from_list(list_file: str) -> List[Tuple[str, str]]:
    base = os.path.dirname(os.path.abspath(list_file))
    entries = []
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                entries.append((line, line if os.path.isabs(line) else os.path.join(base, line)))
    return entries


def list_images(source: str) -> List[Tuple[str, str]]:
    """(name, path) of each image, in output order.

    A folder: every file with an image extension below it, sorted by relative path (the name).
    A file: one path per line (blank lines and ``#`` comments skipped), relative paths taken
    from the list file's folder; names are the lines as written, order as listed.
    """
    if os.path.isdir(source):
        images = _from_folder(source)
        what = f"folder {source} (extensions {', '.join(IMAGE_EXTENSIONS)})"
    elif os.path.isfile(source):
        try:
            images = _from_list(source)
        except UnicodeDecodeError:
            raise DeployError(f"{source} is neither a folder nor a text file listing image "
                              "paths (one per line).") from None
        what = f"list file {source}"
    else:
        raise DeployError(f"{source} does not exist: pass a folder of images or a text file "
                          "with one image path per line.")
    if not images:
        raise DeployError(f"no images found in the {what}.")
    return images
