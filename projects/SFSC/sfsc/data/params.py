"""Parameters of the synthetic ReID generator: dataset size, layout and difficulty knobs.

Every number that changes the rendered images lives in :class:`GenerationParams`, so the
parameters (with the seed and the generator version) identify a generated folder exactly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Tuple

__all__ = ["GenerationParams", "SYNTHETIC_REID", "SYNTHETIC_REID_TINY", "SYNTHETIC_REID_EASY",
           "SYNTHETIC_REID_HARD", "SYNTHETIC_REID_LARGE", "SYNTHETIC_REID_HARD_LARGE"]


@dataclass(frozen=True)
class GenerationParams:
    """Size, layout and difficulty of a synthetic ReID dataset (Market-1501 style).

    Probabilities are in [0, 1]; colour magnitudes are fractions of the 0-255 range unless
    stated; sizes are fractions of the image height or width.
    """

    # --- size and layout ---------------------------------------------------------------------
    image_size: Tuple[int, int] = (128, 64)  # (height, width) in pixels, Market-1501's size
    num_train_ids: int = 256
    num_test_ids: int = 128
    num_cameras: int = 6  # at most 6: Market-1501's file names allow c1..c6
    images_per_id: Tuple[int, int] = (14, 20)  # inclusive range, per identity
    cameras_per_id: Tuple[int, int] = (2, 4)  # inclusive range; >= 2 for cross-camera matches
    tracklets_per_camera: Tuple[int, int] = (1, 2)  # sequences of one identity in one camera
    queries_per_camera: int = 1  # query images per test identity and camera it appears in
    num_distractors: int = 64  # gallery images with pid 0000 (background, false detections)

    # --- identity appearance -----------------------------------------------------------------
    # Identities are drawn in groups sharing a base outfit; each member resamples each outfit
    # attribute with ``outfit_mutation`` and shifts its colours by ``outfit_colour_jitter``.
    # Larger groups / smaller mutation = more look-alike identities = harder.
    outfit_group_size: int = 4
    outfit_mutation: float = 0.35
    outfit_colour_jitter: float = 0.08
    dark_clothes_rate: float = 0.45  # share of garments drawn from the dark / grey palette
    accessory_rate: float = 0.3  # probability of each accessory (bag, backpack, hat)

    # --- per-image variation -----------------------------------------------------------------
    pose_jitter: float = 1.0  # scales limb swing, lean and position jitter
    box_jitter: float = 0.06  # detector misalignment: position / scale noise of the person
    colour_noise: float = 0.04  # per-image global colour shift (std)
    pixel_noise: float = 4.0  # per-pixel sensor noise (std, 0-255 units)
    occlusion_rate: float = 0.25  # mean probability that an image has an occluder
    clutter_rate: float = 0.5  # mean number of background objects per image
    background_saturation: float = 1.0  # colourfulness of scenes and clutter (0: grey)
    background_contrast: float = 1.0  # contrast of scenes around mid-grey (0: flat grey)

    # --- cameras -----------------------------------------------------------------------------
    camera_cast: float = 0.18  # strength of each camera's per-channel colour cast
    camera_brightness: Tuple[float, float] = (0.65, 1.2)  # range of camera gains
    camera_blur: Tuple[float, float] = (0.0, 1.0)  # Gaussian blur radius range (output pixels)
    camera_lowres: Tuple[float, float] = (0.5, 1.0)  # resolution factor range (1: full res)
    camera_squeeze: float = 0.15  # max horizontal squeeze / stretch of a camera's viewpoint
    camera_scale: Tuple[float, float] = (0.72, 0.92)  # person height / image height
    camera_facing_bias: float = 0.6  # how strongly each camera prefers some facings
    jpeg_quality: Tuple[int, int] = (75, 95)  # per camera

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def validate(self) -> None:
        """Raise ValueError if the layout cannot give every query a cross-camera match."""
        if not 2 <= self.num_cameras <= 6:
            raise ValueError(f"num_cameras must be in [2, 6], got {self.num_cameras}")
        lo, hi = self.cameras_per_id
        if not 2 <= lo <= hi <= self.num_cameras:
            raise ValueError(f"cameras_per_id {self.cameras_per_id} must lie in [2, num_cameras]")
        # Each test camera needs its queries plus at least one gallery image.
        if self.images_per_id[0] < hi * (self.queries_per_camera + 1):
            raise ValueError(f"images_per_id {self.images_per_id} too small for {hi} cameras "
                             f"with {self.queries_per_camera} queries each")
        if self.num_train_ids + self.num_test_ids > 1501:
            raise ValueError("at most 1501 identities fit Market-1501's pid range")
        if self.outfit_group_size < 1:
            raise ValueError("outfit_group_size must be >= 1")


#: The demo / benchmark dataset (``SyntheticReID``).
SYNTHETIC_REID = GenerationParams()

#: A small dataset for unit tests (``SyntheticReIDTiny``): generated in about a second.
SYNTHETIC_REID_TINY = GenerationParams(
    num_train_ids=32, num_test_ids=16, images_per_id=(8, 10), cameras_per_id=(2, 3),
    tracklets_per_camera=(1, 1), num_distractors=8,
)

#: The tiny set with milder cameras and no look-alike groups (``SyntheticReIDEasy``): a clear
#: signal in a few hundred CPU steps at 32x16 pixels, for learning checks.
SYNTHETIC_REID_EASY = dataclasses.replace(
    SYNTHETIC_REID_TINY, camera_cast=0.08, camera_blur=(0.0, 0.5), camera_lowres=(0.8, 1.0),
    camera_brightness=(0.85, 1.1), outfit_group_size=1, occlusion_rate=0.1, clutter_rate=0.2)

#: Testbed candidate (``SyntheticReIDHard``): the benchmark set with more look-alike identities
#: (larger outfit groups, fewer and smaller differences inside a group), so that telling
#: identities apart takes finer features.
SYNTHETIC_REID_HARD = dataclasses.replace(
    SYNTHETIC_REID, outfit_group_size=8, outfit_mutation=0.2, outfit_colour_jitter=0.05)

#: Testbed candidate (``SyntheticReIDLarge``): twice the benchmark set's training identities,
#: the same test split size, so that the classifier and features must separate more classes.
SYNTHETIC_REID_LARGE = dataclasses.replace(SYNTHETIC_REID, num_train_ids=512)

#: Testbed candidate (``SyntheticReIDHardLarge``): both of the above, look-alike identities and
#: 512 of them to train on.
SYNTHETIC_REID_HARD_LARGE = dataclasses.replace(SYNTHETIC_REID_HARD, num_train_ids=512)
