"""Parameters of the font-rendered ReID generator: identities are characters, cameras are a
style family of fonts seen under one imaging condition.

Every number that changes the rendered images lives in :class:`GlyphParams`, so the parameters
(with the seed, the generator version and the font files' checksums) identify a generated
folder exactly. Fonts are named by their path under a font root, not by where they are.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from .hangul_fonts import HANGUL_FONT_FAMILIES

__all__ = ["GlyphParams", "HANGUL_REID", "GLYPH_REID_TINY", "CONDITIONS"]

#: Imaging conditions; each style family is seen by one camera per condition.
CONDITIONS = ("clean", "degraded")


@dataclass(frozen=True)
class GlyphParams:
    """Size, layout and rendering of a font-rendered ReID dataset (Market-1501 style).

    Sizes and offsets are fractions of the image side; colour magnitudes fractions of 0-255
    unless stated; ranges are inclusive (low, high).
    """

    # --- what is drawn -------------------------------------------------------------------------
    characters: Tuple[Tuple[int, int], ...] = ((0xAC00, 0xD7A3),)  # code point ranges
    font_families: Tuple[Tuple[str, Tuple[str, ...]], ...] = HANGUL_FONT_FAMILIES

    # --- size and layout (cameras: style families x CONDITIONS, at most 6) -------------------
    image_size: Tuple[int, int] = (48, 48)  # (height, width) in pixels
    num_train_ids: int = 751
    num_test_ids: int = 750
    train_images_per_id: Tuple[int, int] = (16, 18)
    cameras_per_id: Tuple[int, int] = (3, 6)  # cameras an identity is seen by (>= 2)
    gallery_per_camera: Tuple[int, int] = (2, 3)  # test images per camera it is seen by
    queries_per_id: int = 2  # each from another camera, beside that camera's gallery images
    num_distractors: int = 800  # gallery images of pid 0000: characters that are no identity

    # --- per image ---------------------------------------------------------------------------
    glyph_size: Tuple[float, float] = (0.6, 0.86)  # longer side of the glyph's ink box
    offset: float = 0.07  # max shift of the glyph's centre, each axis
    rotation: float = 8.0  # max rotation, degrees
    stroke: Tuple[float, float] = (0.0, 0.012)  # added stroke width, fraction of glyph size
    min_contrast: float = 0.35  # least difference of ink and paper in HLS lightness, [0, 1]
    light_ink_rate: float = 0.25  # share of light ink on dark paper
    saturation: float = 0.6  # max colourfulness of ink and paper
    shading: float = 0.15  # max illumination gradient across the image

    # --- imaging conditions: clean, then degraded ---------------------------------------------
    clean_noise: float = 2.0  # pixel noise std, 0-255 units
    clean_jpeg: Tuple[int, int] = (88, 95)
    degraded_blur: Tuple[float, float] = (0.3, 0.9)  # Gaussian blur radius, output pixels
    degraded_lowres: Tuple[float, float] = (0.45, 0.75)  # resolution factor, then upscaled
    degraded_noise: Tuple[float, float] = (5.0, 14.0)
    degraded_cast: float = 0.25  # per-camera colour cast (per-channel gain deviation)
    degraded_jpeg: Tuple[int, int] = (45, 75)

    @property
    def num_cameras(self) -> int:
        return len(self.font_families) * len(CONDITIONS)

    def camera(self, index: int) -> Tuple[str, str]:
        """(style, condition) of 0-based camera ``index``: c1 = first style clean, c2 = it
        degraded, c3 = second style clean, ..."""
        return self.font_families[index // len(CONDITIONS)][0], CONDITIONS[index % len(CONDITIONS)]

    def character_list(self) -> Tuple[int, ...]:
        """Every code point of ``characters``, in order."""
        return tuple(c for lo, hi in self.characters for c in range(lo, hi + 1))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
        return {k: plain(v) for k, v in dataclasses.asdict(self).items()}

    def validate(self) -> None:
        """Raise ValueError if the layout cannot give every query a cross-camera match."""
        if not 1 <= len(self.font_families) <= 3:
            raise ValueError("1 to 3 style families (6 cameras at most in Market-1501's names)")
        lo, hi = self.cameras_per_id
        if not 2 <= lo <= hi <= self.num_cameras:
            raise ValueError(f"cameras_per_id {self.cameras_per_id} must lie in [2, "
                             f"{self.num_cameras}]")
        if not 1 <= self.queries_per_id <= lo:
            raise ValueError(f"queries_per_id must lie in [1, {lo}]: one per camera")
        if self.train_images_per_id[0] < hi:
            raise ValueError(f"train_images_per_id {self.train_images_per_id} must allow an "
                             f"image in each of {hi} cameras")
        if self.gallery_per_camera[0] < 1:
            raise ValueError("gallery_per_camera must be >= 1")
        if self.num_train_ids + self.num_test_ids > 1501:
            raise ValueError("at most 1501 identities fit Market-1501's pid range")


#: The benchmark's set (``HangulReID``): Market-1501's 751 / 750 identities, Hangul syllables
#: every font of Debian's Korean packages draws, 48x48 pixels (a switchable ResNet-18 step costs
#: what the testbed's 64x32 step does: benchmarks/HangulReID/README.md).
HANGUL_REID = GlyphParams()

#: A unit-test set (``GlyphReIDTiny``) that needs no Korean font: digits and Latin letters in the
#: DejaVu fonts matplotlib ships (font root: :data:`sfsc.data.hangul_fonts.BUNDLED_FONT_ROOT`).
GLYPH_REID_TINY = GlyphParams(
    characters=((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    font_families=(("sans", ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")),
                   ("serif", ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf")),
                   ("oblique", ("DejaVuSans-Oblique.ttf", "DejaVuSerif-Italic.ttf",
                                "DejaVuSansMono-Oblique.ttf"))),
    image_size=(32, 32), num_train_ids=12, num_test_ids=12, train_images_per_id=(6, 8),
    cameras_per_id=(2, 4), gallery_per_camera=(1, 2), num_distractors=6)
