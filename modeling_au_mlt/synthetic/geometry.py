"""Where things are on a synthetic face, in the canonical frontal frame of a 112 px face: the person
(`Identity`, drawn by `sample_identity`), a frame's pose and nuisance (`FrameConditions`, `pose_matrix`), and
each AU's region (`au_regions`: the boxes outside which the AU changes no pixel; `faces.py` says what each AU
draws).
"""

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from ..configuration_au_mlt import ABAW_AUS

CANONICAL_SIZE = 112
FIXED_POINT_BITS = 4  # OpenCV fixed-point bits: coordinates are drawn with 1/16 px precision
_HAIR = ((30, 25, 22), (60, 40, 28), (105, 70, 45), (190, 160, 105), (140, 70, 40), (150, 150, 150))
_IRIS = ((90, 60, 35), (70, 110, 150), (80, 110, 70), (45, 30, 20))


class HairStyle(IntEnum):
    """How the head is drawn around the face: hair behind it, long hair down to the shoulders too, or a shaved
    head (no hair outline; the scalp above the hairline is a darker skin tone)."""

    SHORT = 0
    LONG = 1
    SHAVED = 2


class OccluderShape(IntEnum):
    """What hides part of a frame: an ellipse or a bar."""

    ELLIPSE = 0
    BAR = 1


@dataclass(frozen=True)
class Occluder:
    """An object in front of the face, in 112 px units: its shape, centre, size, angle (degrees) and RGB colour."""

    shape: OccluderShape
    x: float
    y: float
    size: float
    angle: float
    color: tuple


@dataclass(frozen=True)
class Identity:
    """One synthetic person: geometry in 112 px units and RGB colours."""

    center_x: float
    center_y: float
    half_width: float
    half_height: float
    brow_y: float
    brow_inner: float
    brow_outer: float
    brow_arch: float
    brow_thickness: float
    eye_y: float
    eye_offset: float
    eye_half_width: float
    eye_upper_height: float
    eye_lower_height: float
    iris_radius: float
    gaze: float
    nose_y: float
    nose_half_width: float
    mouth_y: float
    mouth_half_width: float
    mouth_curve: float
    upper_lip_height: float
    lower_lip_height: float
    hairline: float
    hair_style: HairStyle
    skin: tuple
    lip: tuple
    brow: tuple
    hair: tuple
    iris: tuple
    background: tuple


@dataclass(frozen=True)
class FrameConditions:
    """Per-frame nuisance: pose (rotation in degrees, scale factor, shift in 112 px units), lighting (gain, and a
    linear gradient of `slope` towards `light_direction` in radians), noise sigma, occluder, JPEG quality."""

    angle: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    gain: float = 1.0
    slope: float = 0.0
    light_direction: float = 0.0
    noise: float = 0.0
    occluder: Occluder | None = None
    quality: int = 90


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person; every feature stays inside the face oval and clear of the AU regions of others."""
    uniform = rng.uniform
    half_width, brow_y = uniform(36.0, 40.0), uniform(38.0, 42.0)
    eye_y = brow_y + uniform(10.5, 12.5)
    tone = uniform(0.0, 1.0)
    skin = np.array([236, 200, 170]) * (1 - tone) + np.array([120, 82, 60]) * tone + rng.integers(-8, 9, 3)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))])
    lip = 0.85 * (0.5 * skin + 0.5 * np.array([170, 60, 75]))
    brow = 0.6 * 0.45 * skin + 0.4 * 0.6 * hair  # always clearly darker than the skin
    return Identity(
        center_x=56 + uniform(-1.5, 1.5),
        center_y=uniform(57.0, 59.0),
        half_width=half_width,
        half_height=uniform(45.0, 48.0),
        brow_y=brow_y,
        brow_inner=uniform(6.0, 8.0),
        brow_outer=uniform(27.0, 30.0),
        brow_arch=uniform(2.0, 3.5),
        brow_thickness=uniform(3.0, 4.2),
        eye_y=eye_y,
        eye_offset=uniform(16.5, 18.5),
        eye_half_width=uniform(7.5, 9.0),
        eye_upper_height=uniform(4.2, 5.4),
        eye_lower_height=uniform(2.8, 3.6),
        iris_radius=uniform(3.2, 3.8),
        gaze=uniform(-1.2, 1.2),
        nose_y=eye_y + uniform(15.0, 17.5),
        nose_half_width=uniform(5.5, 7.0),
        mouth_y=eye_y + uniform(30.0, 32.5),
        mouth_half_width=uniform(12.5, 15.5),
        mouth_curve=uniform(-0.5, 1.0),
        upper_lip_height=uniform(2.8, 3.8),
        lower_lip_height=uniform(3.6, 4.8),
        hairline=brow_y - 20 - uniform(0.0, 5.0),
        hair_style=HairStyle(int(rng.integers(len(HairStyle)))),
        skin=rgb(skin),
        lip=rgb(lip),
        brow=rgb(brow),
        hair=rgb(hair),
        iris=_IRIS[rng.integers(len(_IRIS))],
        background=rgb(rng.uniform(40, 210, 3)),
    )


def pose_matrix(identity: Identity, conditions: FrameConditions, image_size: int) -> np.ndarray:
    """(2, 3) affine map from canonical pixels to saved-frame pixels: rotation and scale about the face centre."""
    scale = image_size / CANONICAL_SIZE
    center = (identity.center_x * scale, identity.center_y * scale)
    matrix = cv2.getRotationMatrix2D(center, conditions.angle, conditions.scale)
    matrix[:, 2] += (conditions.shift_x * scale, conditions.shift_y * scale)
    return matrix


def au_regions(identity: Identity, image_size: int) -> dict[str, list[np.ndarray]]:
    """For each AU, (4, 2) box polygons in canonical pixels outside which the AU changes nothing.

    Boxes are derived from the face's landmarks and each AU's largest displacement (module docstring),
    widened by 2 units plus 1.5 px for anti-aliasing and interpolation.
    """
    face, scale = identity, image_size / CANONICAL_SIZE
    pad = 2.0 + 1.5 / scale
    reach_au1 = face.brow_inner + 0.6 * (face.brow_outer - face.brow_inner) + 2.5  # where AU1's lift ends
    start_au2 = face.brow_inner + 0.4 * (face.brow_outer - face.brow_inner) - 2.5  # where AU2's lift starts
    mouth_top, mouth_bottom = (
        face.mouth_y - face.upper_lip_height - 1.0,
        face.mouth_y + max(face.mouth_curve, 0) + face.lower_lip_height + 1.0,
    )
    corner_in, corner_out = 0.35 * face.mouth_half_width - 4.5, face.mouth_half_width + 5.5
    boxes = {
        "AU1": [
            (
                face.center_x - reach_au1,
                face.brow_y - 18.0,
                face.center_x + reach_au1,
                face.brow_y + face.brow_thickness / 2 + 1.5,
            )
        ],
        "AU2": _mirror(
            face.center_x,
            start_au2,
            face.brow_outer + 3.0,
            face.brow_y - 17.0,
            face.brow_y + face.brow_thickness / 2 + 2.0,
        ),
        "AU4": [
            (
                face.center_x - face.brow_outer - 3.0,
                face.brow_y - face.brow_arch - face.brow_thickness / 2 - 1.5,
                face.center_x + face.brow_outer + 3.0,
                face.brow_y + face.brow_thickness / 2 + 6.0,
            )
        ],
        "AU6": [
            _ordered(
                face.center_x + side * (face.eye_offset - face.eye_half_width - 1.5),
                face.eye_y - 4.5,
                face.center_x + side * (face.eye_offset + face.eye_half_width + 7.5),
                face.eye_y + face.eye_lower_height + 13.0,
            )
            for side in (-1, 1)
        ],
        "AU7": _mirror(
            face.center_x,
            face.eye_offset - face.eye_half_width - 1.5,
            face.eye_offset + face.eye_half_width + 1.5,
            face.eye_y - face.eye_upper_height - 4.5,
            face.eye_y + face.eye_lower_height + 1.5,
        ),
        "AU10": [
            (
                face.center_x - face.mouth_half_width - 4.0,
                face.nose_y - 4.0,
                face.center_x + face.mouth_half_width + 4.0,
                face.mouth_y + 2.0,
            )
        ],
        "AU12": _mirror(
            face.center_x, corner_in, corner_out, face.mouth_y - face.upper_lip_height - 10.0, mouth_bottom
        ),
        "AU15": _mirror(face.center_x, corner_in, corner_out - 2.0, mouth_top, mouth_bottom + 12.0),
        "AU23": [
            (
                face.center_x - face.mouth_half_width - 1.5,
                mouth_top,
                face.center_x + face.mouth_half_width + 1.5,
                mouth_bottom,
            )
        ],
        "AU24": [
            (
                face.center_x - face.mouth_half_width - 1.5,
                mouth_top - 4.0,
                face.center_x + face.mouth_half_width + 1.5,
                mouth_bottom + 4.0,
            )
        ],
        "AU25": [
            (
                face.center_x - face.mouth_half_width - 1.5,
                mouth_top - 2.5,
                face.center_x + face.mouth_half_width + 1.5,
                mouth_bottom + 3.5,
            )
        ],
        # Down to 12 units below the canvas: the pose warp reflects the bottom rows into view.
        "AU26": [
            (
                face.center_x - 0.85 * face.half_width - 2.0,
                face.mouth_y - 2.0,
                face.center_x + 0.85 * face.half_width + 2.0,
                CANONICAL_SIZE + 12.0,
            )
        ],
    }
    return {
        name: [
            scale * np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])
            for x0, y0, x1, y1 in boxes[name]
        ]
        for name in ABAW_AUS
    }


def transform_polygons(polygons: list[np.ndarray], matrix: np.ndarray) -> list[np.ndarray]:
    """Apply a (2, 3) affine map to each (n, 2) polygon."""
    return [polygon @ matrix[:, :2].T + matrix[:, 2] for polygon in polygons]


def polygon_mask(polygons: list[np.ndarray], image_size: int) -> np.ndarray:
    """(image_size, image_size) bool mask of the pixels whose centres lie inside any polygon."""
    mask = np.zeros((image_size, image_size), np.uint8)
    for polygon in polygons:  # one call each: a single fillPoly call leaves overlaps of polygons empty
        cv2.fillPoly(mask, [fixed_point(polygon)], 1, cv2.LINE_8, FIXED_POINT_BITS)
    return mask.astype(bool)


def _mirror(center_x: float, inner: float, outer: float, top: float, bottom: float) -> list[tuple]:
    """Left and right boxes spanning |x - center_x| in [inner, outer]."""
    return [(center_x - outer, top, center_x - inner, bottom), (center_x + inner, top, center_x + outer, bottom)]


def _ordered(x0: float, y0: float, x1: float, y1: float) -> tuple:
    """The box (x0, y0, x1, y1) with its x bounds in increasing order."""
    return min(x0, x1), y0, max(x0, x1), y1


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates in OpenCV's fixed point (`FIXED_POINT_BITS` fractional bits)."""
    return np.round(np.asarray(points) * (1 << FIXED_POINT_BITS)).astype(np.int32)


def rgb(color) -> tuple:
    """An RGB tuple of ints in [0, 255]."""
    return tuple(min(255, max(0, int(round(float(value))))) for value in color)
