"""Generated ReID datasets registered in FastReID's DATASET_REGISTRY (Market-1501 layout).

``SyntheticReID`` is the demo / benchmark dataset of drawn people, ``SyntheticReIDTiny`` the
unit-test one; ``HangulReID`` renders Hangul syllables in Debian's Korean fonts at
Market-1501's identity count, ``GlyphReIDTiny`` the same way letters in matplotlib's DejaVu
fonts (unit tests). Each is generated on first use under ``<root>/<folder>`` (root:
FASTREID_DATASETS, default "datasets") and reused while its manifest matches; see
:mod:`sfsc.data.synthetic` and :mod:`sfsc.data.hangul`.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple, Union

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.bases import ImageDataset

from .hangul import ensure_hangul_reid, hangul_header
from .hangul_fonts import (
    BUNDLED_FONT_ROOT,
    HANGUL_FONT_PACKAGES,
    FontFile,
    font_roots,
    resolve_fonts,
)
from .hangul_params import GLYPH_REID_TINY, HANGUL_REID, GlyphParams
from .layout import GALLERY_DIR, QUERY_DIR, TRAIN_DIR
from .params import (
    SYNTHETIC_REID,
    SYNTHETIC_REID_EASY,
    SYNTHETIC_REID_HARD,
    SYNTHETIC_REID_HARD_LARGE,
    SYNTHETIC_REID_LARGE,
    SYNTHETIC_REID_TINY,
    GenerationParams,
)
from .synthetic import ensure_synthetic_reid, manifest_header

__all__ = ["SyntheticReID", "SyntheticReIDTiny", "SyntheticReIDEasy", "SyntheticReIDHard",
           "SyntheticReIDLarge", "SyntheticReIDHardLarge", "HangulReID", "GlyphReIDTiny",
           "parse_name", "synthetic_header"]

# pid, camera, sequence, frame, box: Market-1501's naming, e.g. 0042_c3s2_004711_01.jpg
_NAME = re.compile(r"^(\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")

Item = Tuple[str, Union[int, str], Union[int, str]]


def parse_name(filename: str) -> Tuple[int, int, int, int, int]:
    """(pid, camera 1-based, sequence, frame, box) of a Market-1501 file name; ValueError if not."""
    m = _NAME.match(filename)
    if m is None:
        raise ValueError(f"not a Market-1501 image name: {filename!r}")
    return tuple(int(g) for g in m.groups())


class _GeneratedMarket(ImageDataset):
    """A generated Market-1501-style dataset: (img_path, pid, camid) items like Market1501's."""

    _junk_pids = [0, -1]
    folder = ""
    dataset_name = ""
    default_seed = 0

    def __init__(self, root: str = "datasets", seed: int | None = None, **kwargs):
        self.root = root
        self.seed = self.default_seed if seed is None else int(seed)
        # Other seeds get their own folder so that alternating seeds never regenerate.
        name = self.folder if self.seed == self.default_seed else f"{self.folder}_seed{self.seed}"
        self.dataset_dir = self._ensure(os.path.join(root, name), self.seed)
        self.train_dir = os.path.join(self.dataset_dir, TRAIN_DIR)
        self.query_dir = os.path.join(self.dataset_dir, QUERY_DIR)
        self.gallery_dir = os.path.join(self.dataset_dir, GALLERY_DIR)
        self.check_before_run([self.train_dir, self.query_dir, self.gallery_dir])
        super().__init__(lambda: self.process_dir(self.train_dir),
                         lambda: self.process_dir(self.query_dir, is_train=False),
                         lambda: self.process_dir(self.gallery_dir, is_train=False), **kwargs)

    def _ensure(self, folder: str, seed: int) -> str:
        """Generate the dataset of ``seed`` at ``folder`` unless it is there; its path."""
        raise NotImplementedError

    @classmethod
    def header(cls) -> Dict[str, Any]:
        """The manifest header (generator, version, seed, parameters...) of the default seed."""
        raise NotImplementedError

    def process_dir(self, dir_path: str, is_train: bool = True) -> List[Item]:
        """Items of one folder, sorted by name; train pids / camids are prefixed like Market's."""
        data: List[Item] = []
        for name in sorted(os.listdir(dir_path)):
            if not name.endswith(".jpg"):
                continue
            pid, cam = parse_name(name)[:2]
            camid = cam - 1  # FastReID counts cameras from 0
            if is_train:
                data.append((os.path.join(dir_path, name), f"{self.dataset_name}_{pid}",
                             f"{self.dataset_name}_{camid}"))
            else:
                data.append((os.path.join(dir_path, name), pid, camid))
        return data


class _SyntheticMarket(_GeneratedMarket):
    """Drawn people (:mod:`sfsc.data.synthetic`) of ``params``."""

    params: GenerationParams = SYNTHETIC_REID

    def _ensure(self, folder: str, seed: int) -> str:
        return ensure_synthetic_reid(folder, self.params, seed, name=type(self).__name__)

    @classmethod
    def header(cls) -> Dict[str, Any]:
        return manifest_header(cls.params, cls.default_seed)


@DATASET_REGISTRY.register()
class SyntheticReID(_SyntheticMarket):
    """Demo / benchmark dataset: 256 train and 128 test identities, 6 cameras, ~6.6k images."""

    folder = "SyntheticReID"
    dataset_name = "synthreid"
    params = SYNTHETIC_REID


@DATASET_REGISTRY.register()
class SyntheticReIDTiny(_SyntheticMarket):
    """Unit-test dataset: 32 train and 16 test identities, ~450 images, generated in ~1 s."""

    folder = "SyntheticReIDTiny"
    dataset_name = "synthreidtiny"
    params = SYNTHETIC_REID_TINY


@DATASET_REGISTRY.register()
class SyntheticReIDEasy(_SyntheticMarket):
    """Learning-check dataset: the tiny set with milder cameras and no look-alike groups (a
    width-0.25 ResNet-18 learns it in 240 CPU steps at 32x16 pixels)."""

    folder = "SyntheticReIDEasy"
    dataset_name = "synthreideasy"
    params = SYNTHETIC_REID_EASY


@DATASET_REGISTRY.register()
class SyntheticReIDHard(_SyntheticMarket):
    """The benchmark's testbed (configs/SyntheticHard): SyntheticReID's sizes with look-alike
    identities (outfits shared in groups of 8)."""

    folder = "SyntheticReIDHard"
    dataset_name = "synthreidhard"
    params = SYNTHETIC_REID_HARD


@DATASET_REGISTRY.register()
class SyntheticReIDLarge(_SyntheticMarket):
    """Testbed candidate: 512 train and 128 test identities, otherwise as SyntheticReID."""

    folder = "SyntheticReIDLarge"
    dataset_name = "synthreidlarge"
    params = SYNTHETIC_REID_LARGE


@DATASET_REGISTRY.register()
class SyntheticReIDHardLarge(_SyntheticMarket):
    """Testbed candidate: SyntheticReIDHard's look-alike identities, 512 of them for training."""

    folder = "SyntheticReIDHardLarge"
    dataset_name = "synthreidhardlarge"
    params = SYNTHETIC_REID_HARD_LARGE


class _FontRenderedMarket(_GeneratedMarket):
    """Characters in fonts (:mod:`sfsc.data.hangul`) of ``params``; the fonts are looked up
    under ``font_folders`` (None: :func:`sfsc.data.hangul_fonts.font_roots`), and missing ones
    raise FontsMissingError with the line that installs ``font_packages``."""

    params: GlyphParams = HANGUL_REID
    font_packages: Tuple[str, ...] = HANGUL_FONT_PACKAGES
    font_folders: Optional[Tuple[str, ...]] = None

    @classmethod
    def fonts(cls) -> Tuple[FontFile, ...]:
        """The dataset's font files on this machine, with their checksums."""
        roots = cls.font_folders if cls.font_folders is not None else font_roots()
        return resolve_fonts(cls.params.font_families, roots, cls.font_packages, cls.__name__)

    def _ensure(self, folder: str, seed: int) -> str:
        return ensure_hangul_reid(folder, self.params, seed, self.fonts(),
                                  name=type(self).__name__)

    @classmethod
    def header(cls) -> Dict[str, Any]:
        return hangul_header(cls.params, cls.default_seed, cls.fonts())


@DATASET_REGISTRY.register()
class HangulReID(_FontRenderedMarket):
    """Market-1501's 751 train / 750 test identities as Hangul syllables in 58 fonts of Debian's
    Korean packages; 6 cameras: gothic, myeongjo and brush / pen styles, each clean and
    degraded (benchmarks/HangulReID)."""

    folder = "HangulReID"
    dataset_name = "hangulreid"
    params = HANGUL_REID


@DATASET_REGISTRY.register()
class GlyphReIDTiny(_FontRenderedMarket):
    """Unit-test dataset: HangulReID's generator on digits and Latin letters in matplotlib's
    DejaVu fonts (no Korean font needed), 12 train / 12 test identities, 32x32 pixels."""

    folder = "GlyphReIDTiny"
    dataset_name = "glyphreidtiny"
    params = GLYPH_REID_TINY
    font_packages = ()
    font_folders = (BUNDLED_FONT_ROOT,)


def synthetic_header(name: str) -> Optional[Dict[str, Any]]:
    """The manifest header (generator version, seed, parameters; for font-rendered sets the
    font files and their SHA-256) that DATASETS name ``name`` is generated with, or None when
    it is not a generated dataset. Raises FontsMissingError for a font-rendered set whose
    fonts are not installed."""
    try:
        cls = DATASET_REGISTRY.get(name)
    except KeyError:
        return None
    if not (isinstance(cls, type) and issubclass(cls, _GeneratedMarket)):
        return None
    return cls.header()
