"""The fonts of the Hangul ReID set: Debian's Korean font packages in three style families, where
they are on this machine, their checksums, and which characters every one of them draws.

Fonts are named by their path under a font root (``nanum/NanumGothic.ttf``): the roots are
``$SFSC_FONT_PATH`` (folders separated by ``os.pathsep``) and then Debian's
``/usr/share/fonts/truetype``. A font is found under the first root that holds it.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

import matplotlib
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTCollection, TTFont

from .errors import FontsMissingError

__all__ = ["HANGUL_FONT_PACKAGES", "HANGUL_FONT_FAMILIES", "DEFAULT_FONT_ROOTS",
           "BUNDLED_FONT_ROOT", "FontFile",
           "font_roots", "install_command", "resolve_fonts", "drawn_characters"]

#: Debian's Korean font packages (Korean-only: no Han ideographs, no Noto CJK).
HANGUL_FONT_PACKAGES: Tuple[str, ...] = (
    "fonts-nanum", "fonts-nanum-extra", "fonts-nanum-eco", "fonts-unfonts-core",
    "fonts-unfonts-extra", "fonts-baekmuk", "fonts-alee", "fonts-lexi-gulim", "fonts-lexi-saebom",
    "fonts-naver-d2coding", "fonts-woowa-bm")

#: (style, font files) per style family; a camera draws each image's font from one family.
#: Sorted by eye from the packages' files: sans-serif (gothic / dotum / gulim), serif
#: (myeongjo / batang) and brush, pen and handwriting. Left out: look-alikes of a listed font
#: (Light / EcoBold / YetHangul variants) and fonts whose glyphs are stencil-damaged.
HANGUL_FONT_FAMILIES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("gothic", (
        "nanum/NanumGothic.ttf", "nanum/NanumGothicBold.ttf", "nanum/NanumGothicExtraBold.ttf",
        "nanum/NanumGothicLight.ttf", "nanum/NanumBarunGothic.ttf",
        "nanum/NanumBarunGothicBold.ttf", "nanum/NanumBarunGothicLight.ttf",
        "nanum/NanumGothicCoding.ttf", "nanum/NanumGothicEco.ttf", "nanum/NanumSquareR.ttf",
        "nanum/NanumSquareB.ttf", "nanum/NanumSquareRoundR.ttf", "unfonts-core/UnDotum.ttf",
        "unfonts-core/UnDotumBold.ttf", "unfonts-core/UnGraphic.ttf", "unfonts-core/UnDinaru.ttf",
        "unfonts-extra/UnJamoDotum.ttf", "unfonts-extra/UnJamoSora.ttf",
        "unfonts-extra/UnJamoNovel.ttf", "unfonts-extra/UnTaza.ttf", "baekmuk/gulim.ttf",
        "baekmuk/dotum.ttf", "baekmuk/hline.ttf", "lexi/LexiGulim.ttf",
        "naver-d2coding/D2Coding-Ver1.3.2-20180524-all.ttc", "alee/Guseul.ttf", "alee/Bandal.ttf",
        "woowa-bm/BMDOHYEON_ttf.ttf", "woowa-bm/BMHANNAAir_ttf.ttf", "woowa-bm/BMHANNAPro.ttf",
        "woowa-bm/BMJUA_ttf.ttf")),
    ("myeongjo", (
        "nanum/NanumMyeongjo.ttf", "nanum/NanumMyeongjoBold.ttf",
        "nanum/NanumMyeongjoExtraBold.ttf", "nanum/NanumMyeongjoEco.ttf",
        "unfonts-core/UnBatang.ttf", "unfonts-core/UnBatangBold.ttf", "baekmuk/batang.ttf",
        "unfonts-extra/UnJamoBatang.ttf", "unfonts-extra/UnShinmun.ttf",
        "unfonts-extra/UnYetgul.ttf", "woowa-bm/BMEULJIROTTF.ttf")),
    ("brush", (
        "nanum/NanumBrush.ttf", "nanum/NanumPen.ttf", "nanum/NanumBarunpenR.ttf",
        "nanum/NanumBarunpenB.ttf", "unfonts-core/UnGungseo.ttf", "unfonts-core/UnPilgi.ttf",
        "unfonts-core/UnPilgiBold.ttf", "unfonts-extra/UnPen.ttf",
        "unfonts-extra/UnPenheulim.ttf", "unfonts-extra/UnPilgia.ttf", "unfonts-extra/UnVada.ttf",
        "alee/Eunjin.ttf", "alee/Bangwool.ttf", "lexi/LexiSaebomR.ttf",
        "woowa-bm/BMKIRANGHAERANG-TTF.ttf", "woowa-bm/BMYEONSUNG_ttf.ttf")),
)

DEFAULT_FONT_ROOTS: Tuple[str, ...] = ("/usr/share/fonts/truetype",)
#: The DejaVu fonts matplotlib ships: on every machine the package runs on (unit tests).
BUNDLED_FONT_ROOT = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@dataclass(frozen=True)
class FontFile:
    """One font of a style family: its name under a font root, where it is, its SHA-256."""

    style: str
    name: str  # path under its font root, e.g. "nanum/NanumGothic.ttf"
    path: str
    sha256: str

    def entry(self) -> Dict[str, str]:
        """What a manifest records of the font (not where it is: that is the machine's)."""
        return {"style": self.style, "file": self.name, "sha256": self.sha256}


def font_roots() -> Tuple[str, ...]:
    """``$SFSC_FONT_PATH``'s folders, then Debian's font folder."""
    extra = [d for d in os.environ.get("SFSC_FONT_PATH", "").split(os.pathsep) if d]
    return tuple(extra) + DEFAULT_FONT_ROOTS


def install_command(packages: Sequence[str]) -> str:
    """The shell line that installs ``packages`` on Debian / Ubuntu (run as root)."""
    return "apt-get install -y " + " ".join(packages)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Size and time are part of the key: a file replaced under the same name is hashed anew.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_fonts(families: Sequence[Tuple[str, Sequence[str]]], roots: Sequence[str],
                  packages: Sequence[str], dataset: str) -> Tuple[FontFile, ...]:
    """Every font of ``families`` found under ``roots``, in the families' order; raises
    :class:`FontsMissingError` naming the missing files and the line that installs
    ``packages`` when any is absent."""
    found: List[FontFile] = []
    missing: List[str] = []
    for style, names in families:
        for name in names:
            path = next((os.path.join(r, name) for r in roots
                         if os.path.isfile(os.path.join(r, name))), None)
            if path is None:
                missing.append(name)
                continue
            st = os.stat(path)
            found.append(FontFile(style, name, path, _sha256(path, st.st_size, st.st_mtime_ns)))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        fix = (f"Install them (as root; `make hangul-fonts` does it):\n    "
               f"{install_command(packages)}\n" if packages else "")
        raise FontsMissingError(
            f"{dataset} renders its images from fonts that are not on this machine: {shown} "
            f"(looked in {', '.join(roots)}).\n{fix}Fonts in another folder: put it in "
            f"SFSC_FONT_PATH.")
    return tuple(found)


def _open(path: str) -> TTFont:
    if path.lower().endswith((".ttc", ".otc")):
        return TTCollection(path).fonts[0]  # the face PIL draws by default
    return TTFont(path)


@contextlib.contextmanager
def _quiet_fonttools():
    """Silence fontTools' warnings: some packaged fonts have harmless table quirks."""
    logger = logging.getLogger("fontTools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _drawn(path: str, characters: Sequence[int]) -> set:
    """The characters the font draws with a glyph of its own that has an outline: not
    .notdef, not an empty glyph, not a placeholder shared with another of ``characters``."""
    with _quiet_fonttools():
        font = _open(path)
        cmap = font.getBestCmap() or {}
        glyphs = {c: cmap[c] for c in characters if c in cmap and cmap[c] != ".notdef"}
        shared = {g for g, n in collections.Counter(glyphs.values()).items() if n > 1}
        if "glyf" in font:  # an empty TrueType glyph has no data in the glyph table
            loca = font["loca"]
            index = {g: i for i, g in enumerate(font.getGlyphOrder())}
            outlined = {g for g in set(glyphs.values()) if loca[index[g] + 1] > loca[index[g]]}
        else:  # CFF: draw the charstring and look for points
            glyph_set, outlined = font.getGlyphSet(), set()
            for g in set(glyphs.values()):
                pen = BoundsPen(glyph_set)
                glyph_set[g].draw(pen)
                if pen.bounds is not None:
                    outlined.add(g)
    return {c for c, g in glyphs.items() if g in outlined and g not in shared}


def drawn_characters(fonts: Iterable[FontFile], characters: Sequence[int]) -> List[int]:
    """The code points of ``characters`` (sorted) that every font draws (see :func:`_drawn`)."""
    fonts = list(fonts)
    logging.getLogger(__name__).info(f"Checking which of {len(characters)} characters all "
                                     f"{len(fonts)} fonts draw ...")
    covered = set(characters)
    for font in fonts:
        covered &= _drawn(font.path, characters)
    return sorted(covered)
