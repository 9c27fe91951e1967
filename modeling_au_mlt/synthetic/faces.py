"""Procedural cartoon faces on which each of the 12 ABAW Action Units acts locally, where its muscle acts.

A face is drawn with OpenCV primitives (anti-aliased, sub-pixel) in a canonical frontal frame: background,
hair, ears, neck, face oval, nose (static per identity, drawn once), then brows, eyes, nostrils and lips,
which the AUs move. A small pose (rotation, scale, shift) then warps the canonical image, and lighting
gradient, sensor noise, rare occluders and JPEG compression are added per frame.

Geometry is written in units of a 112 px face and scaled to `image_size`. An active AU of intensity
`a` in (0, 1] draws with strength `f = 0.3 + 0.7 a` (so the weakest positive, a = 0.35, still draws 55 %
of the full effect); an inactive AU (a = 0) draws nothing. What each AU draws at full strength:

- AU1 inner brow raiser: the inner 60 % of both brows rise by up to 7 px; two horizontal wrinkles in
  the centre of the forehead.
- AU2 outer brow raiser: the outer 60 % of each brow rises by up to 7 px; an arched wrinkle above each.
- AU4 brow lowerer: brows drop by 2 px (4 px at the inner ends) and their inner ends move 3 px towards
  the midline; two vertical furrows between the brows.
- AU6 cheek raiser: lower lids rise a little, a bulge line under each eye, a lighter raised cheek, three
  crow's-feet lines at each outer eye corner.
- AU7 lid tightener: upper lids drop and lower lids rise (to 55 % / 50 % of their height): between the
  lid lines about a fifth of the open eye stays visible (three fifths at the weakest positive).
- AU10 upper lip raiser: the upper lip rises 3.5 px showing the upper teeth, nostrils widen and rise,
  nasolabial folds run from the nose wings to beside the mouth corners.
- AU12 lip corner puller: the outer 65 % of the lips bend so the corners rise 7 px and move out 2 px;
  a smile crease beside each corner.
- AU15 lip corner depressor: the corners drop 6 px; a crease runs down from each corner.
- AU23 lip tightener: the mouth narrows by 30 %, the lips thin by half and darken, vertical lip wrinkles.
- AU24 lip presser: the lips flatten to 30 % of their height and pale (pressed into a line), a thick dark
  seam, bulge shadows above the upper and below the lower lip.
- AU25 lips part: the lips part by 6 px showing the upper teeth.
- AU26 jaw drop: the lower lip drops 8 px opening a dark mouth cavity, and the chin drops 5 px.

`au_regions` gives, for each AU, the boxes (polygons after the pose) outside which it changes no pixel.
"""

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from ..configuration_au_mlt import ABAW_AUS
from .features import arc, draw_features

CANONICAL_SIZE = 112
MIN_STRENGTH = 0.3  # drawing strength of an AU at intensity -> 0+; strength is 1 at intensity 1
_SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn with 1/16 px precision
_HAIR = ((30, 25, 22), (60, 40, 28), (105, 70, 45), (190, 160, 105), (140, 70, 40), (150, 150, 150))
_IRIS = ((90, 60, 35), (70, 110, 150), (80, 110, 70), (45, 30, 20))


@dataclass(frozen=True)
class Identity:
    """One synthetic person: geometry in 112 px units and RGB colours."""

    cx: float
    cy: float
    ax: float
    ay: float
    brow_y: float
    brow_inner: float
    brow_outer: float
    brow_arch: float
    brow_thick: float
    eye_y: float
    eye_dx: float
    eye_hw: float
    eye_hu: float
    eye_hl: float
    iris_r: float
    gaze: float
    nose_y: float
    nose_hw: float
    mouth_y: float
    mouth_hw: float
    mouth_curve: float
    lip_up: float
    lip_low: float
    hairline: float
    hair_style: int
    skin: tuple
    lip: tuple
    brow: tuple
    hair: tuple
    iris: tuple
    background: tuple


@dataclass(frozen=True)
class FrameConditions:
    """Per-frame nuisance: pose (degrees, factor, 112 px units), lighting, noise, occluder, JPEG quality."""

    angle: float = 0.0
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    gain: float = 1.0
    slope: float = 0.0
    light_dir: float = 0.0
    noise: float = 0.0
    occluder: tuple | None = None  # (kind 0 ellipse / 1 bar, x, y, size, angle, r, g, b) in 112 px units
    quality: int = 90


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person; every feature stays inside the face oval and clear of the AU regions of others."""
    u = rng.uniform
    ax, brow_y = u(36.0, 40.0), u(38.0, 42.0)
    eye_y = brow_y + u(10.5, 12.5)
    tone = u(0.0, 1.0)
    skin = np.array([236, 200, 170]) * (1 - tone) + np.array([120, 82, 60]) * tone + rng.integers(-8, 9, 3)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))])
    lip = 0.85 * (0.5 * skin + 0.5 * np.array([170, 60, 75]))
    brow = 0.6 * 0.45 * skin + 0.4 * 0.6 * hair  # always clearly darker than the skin
    return Identity(
        cx=56 + u(-1.5, 1.5),
        cy=u(57.0, 59.0),
        ax=ax,
        ay=u(45.0, 48.0),
        brow_y=brow_y,
        brow_inner=u(6.0, 8.0),
        brow_outer=u(27.0, 30.0),
        brow_arch=u(2.0, 3.5),
        brow_thick=u(3.0, 4.2),
        eye_y=eye_y,
        eye_dx=u(16.5, 18.5),
        eye_hw=u(7.5, 9.0),
        eye_hu=u(4.2, 5.4),
        eye_hl=u(2.8, 3.6),
        iris_r=u(3.2, 3.8),
        gaze=u(-1.2, 1.2),
        nose_y=eye_y + u(15.0, 17.5),
        nose_hw=u(5.5, 7.0),
        mouth_y=eye_y + u(30.0, 32.5),
        mouth_hw=u(12.5, 15.5),
        mouth_curve=u(-0.5, 1.0),
        lip_up=u(2.8, 3.8),
        lip_low=u(3.6, 4.8),
        hairline=brow_y - 20 - u(0.0, 5.0),
        hair_style=int(rng.integers(3)),
        skin=_rgb(skin),
        lip=_rgb(lip),
        brow=_rgb(brow),
        hair=_rgb(hair),
        iris=_IRIS[rng.integers(len(_IRIS))],
        background=_rgb(rng.uniform(40, 210, 3)),
    )


def strengths(intensities) -> np.ndarray:
    """(12,) drawing strengths: 0 for an inactive AU, `0.3 + 0.7 a` for an active one."""
    a = np.clip(np.asarray(intensities, dtype=np.float64), 0.0, 1.0)
    return np.where(a > 0, MIN_STRENGTH + (1 - MIN_STRENGTH) * a, 0.0)


def pose_matrix(identity: Identity, conditions: FrameConditions, image_size: int) -> np.ndarray:
    """(2, 3) affine map from canonical pixels to saved-frame pixels: rotation and scale about the face centre."""
    s = image_size / CANONICAL_SIZE
    matrix = cv2.getRotationMatrix2D((identity.cx * s, identity.cy * s), conditions.angle, conditions.scale)
    matrix[:, 2] += (conditions.dx * s, conditions.dy * s)
    return matrix


def au_regions(identity: Identity, image_size: int) -> dict[str, list[np.ndarray]]:
    """For each AU, (4, 2) box polygons in canonical pixels outside which the AU changes nothing.

    Boxes are derived from the face's landmarks and each AU's largest displacement (module docstring),
    widened by 2 units plus 1.5 px for anti-aliasing and interpolation.
    """
    i, s = identity, image_size / CANONICAL_SIZE
    pad = 2.0 + 1.5 / s
    reach = i.brow_inner + 0.6 * (i.brow_outer - i.brow_inner) + 2.5  # where AU1's lift ends
    start2 = i.brow_inner + 0.4 * (i.brow_outer - i.brow_inner) - 2.5  # where AU2's lift starts
    mouth_top, mouth_bottom = i.mouth_y - i.lip_up - 1.0, i.mouth_y + max(i.mouth_curve, 0) + i.lip_low + 1.0
    corner_in, corner_out = 0.35 * i.mouth_hw - 4.5, i.mouth_hw + 5.5
    boxes = {
        "AU1": [(i.cx - reach, i.brow_y - 18.0, i.cx + reach, i.brow_y + i.brow_thick / 2 + 1.5)],
        "AU2": _mirror(i.cx, start2, i.brow_outer + 3.0, i.brow_y - 17.0, i.brow_y + i.brow_thick / 2 + 2.0),
        "AU4": [
            (
                i.cx - i.brow_outer - 3.0,
                i.brow_y - i.brow_arch - i.brow_thick / 2 - 1.5,
                i.cx + i.brow_outer + 3.0,
                i.brow_y + i.brow_thick / 2 + 6.0,
            )
        ],
        "AU6": [
            _ordered(
                i.cx + side * (i.eye_dx - i.eye_hw - 1.5),
                i.eye_y - 4.5,
                i.cx + side * (i.eye_dx + i.eye_hw + 7.5),
                i.eye_y + i.eye_hl + 13.0,
            )
            for side in (-1, 1)
        ],
        "AU7": _mirror(
            i.cx,
            i.eye_dx - i.eye_hw - 1.5,
            i.eye_dx + i.eye_hw + 1.5,
            i.eye_y - i.eye_hu - 4.5,
            i.eye_y + i.eye_hl + 1.5,
        ),
        "AU10": [(i.cx - i.mouth_hw - 4.0, i.nose_y - 4.0, i.cx + i.mouth_hw + 4.0, i.mouth_y + 2.0)],
        "AU12": _mirror(i.cx, corner_in, corner_out, i.mouth_y - i.lip_up - 10.0, mouth_bottom),
        "AU15": _mirror(i.cx, corner_in, corner_out - 2.0, mouth_top, mouth_bottom + 12.0),
        "AU23": [(i.cx - i.mouth_hw - 1.5, mouth_top, i.cx + i.mouth_hw + 1.5, mouth_bottom)],
        "AU24": [(i.cx - i.mouth_hw - 1.5, mouth_top - 4.0, i.cx + i.mouth_hw + 1.5, mouth_bottom + 4.0)],
        "AU25": [(i.cx - i.mouth_hw - 1.5, mouth_top - 2.5, i.cx + i.mouth_hw + 1.5, mouth_bottom + 3.5)],
        # Down to 12 units below the canvas: the pose warp reflects the bottom rows into view.
        "AU26": [(i.cx - 0.85 * i.ax - 2.0, i.mouth_y - 2.0, i.cx + 0.85 * i.ax + 2.0, CANONICAL_SIZE + 12.0)],
    }
    return {
        name: [
            s * np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])
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
        cv2.fillPoly(mask, [_fixed(polygon)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


class FaceRenderer:
    """Draws one identity: the static part once, then the AU-dependent part and nuisance per frame."""

    def __init__(self, identity: Identity, image_size: int = CANONICAL_SIZE):
        self.identity, self.size, self.s = identity, image_size, image_size / CANONICAL_SIZE
        self.base = self._static_layer()
        grid = (np.arange(image_size, dtype=np.float32) - image_size / 2) / image_size
        self._gx, self._gy = np.meshgrid(grid, grid)

    def canonical(self, intensities) -> np.ndarray:
        """(H, W, 3) uint8 RGB frontal face with the AUs of `intensities` (12 values in ABAW order)."""
        canvas = self.base.copy()
        draw_features(canvas, self, strengths(intensities))
        return canvas

    def render(self, intensities, conditions: FrameConditions, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB saved frame: posed, lit, occluded and noisy (noise needs `rng`)."""
        matrix = pose_matrix(self.identity, conditions, self.size)
        image = cv2.warpAffine(
            self.canonical(intensities),
            matrix,
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        if conditions.occluder is not None:
            self._draw_occluder(image, conditions.occluder)
        light = conditions.gain * (
            1 + conditions.slope * (np.cos(conditions.light_dir) * self._gx + np.sin(conditions.light_dir) * self._gy)
        )
        out = image.astype(np.float32) * light[..., None]
        if conditions.noise > 0 and rng is not None:
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(conditions.noise)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def sample_conditions(self, rng: np.random.Generator, n_frames: int) -> list[FrameConditions]:
        """Per-frame nuisance of one video: smooth pose and lighting drift, noise, JPEG quality, rare occluders.

        Pose: rotation within 5 degrees, scale within 4 %, shift within 3 units, as slow sinusoids plus jitter.
        Lighting: gain 0.85-1.15 and a linear gradient of slope within 0.25 across the frame. Noise sigma 1-4
        grey levels; JPEG quality 75-95. An occluder (ellipse or bar near the frame border) appears in 3 % of
        frames and is dropped if it would cover more than 35 % of any AU's region.
        """
        t = np.arange(n_frames)[:, None]
        waves = np.sin(2 * np.pi * t / rng.uniform(40, 120, 4) + rng.uniform(0, 2 * np.pi, 4))  # (n_frames, 4)
        jitter = rng.normal(0, 1, (n_frames, 4)) * (0.3, 0.003, 0.2, 0.2)
        pose = waves * rng.uniform(0, 1, 4) * (5.0, 0.04, 3.0, 3.0) + jitter  # angle, scale - 1, dx, dy
        gain = rng.uniform(0.85, 1.15) + 0.03 * np.sin(
            2 * np.pi * t[:, 0] / rng.uniform(60, 200) + rng.uniform(0, 6.3)
        )
        slope, light_dir = rng.uniform(-0.25, 0.25), rng.uniform(0, 2 * np.pi)
        noise, quality = rng.uniform(1.0, 4.0, n_frames), rng.integers(75, 96, n_frames)
        occluded = rng.random(n_frames) < 0.03
        conditions = []
        for k in range(n_frames):
            angle, scale, dx, dy = pose[k]
            frame = FrameConditions(
                angle, 1 + scale, dx, dy, float(gain[k]), slope, light_dir, float(noise[k]), None, int(quality[k])
            )
            if occluded[k]:
                frame = self._with_occluder(rng, frame)
            conditions.append(frame)
        return conditions

    def _with_occluder(self, rng: np.random.Generator, frame: FrameConditions) -> FrameConditions:
        """`frame` with a random border occluder, or unchanged if it would hide too much of an AU region."""
        angle = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(47.0, 56.0)
        color = tuple(rng.integers(30, 230, 3).tolist())
        occluder = (
            int(rng.integers(2)),
            56 + radius * np.cos(angle),
            56 + radius * np.sin(angle),
            rng.uniform(8.0, 14.0),
            rng.uniform(0, 180),
            *color,
        )
        covered = np.zeros((self.size, self.size, 3), np.uint8)
        self._draw_occluder(covered, occluder[:5] + (255, 255, 255))
        covered = covered[..., 0] > 0
        matrix = pose_matrix(self.identity, frame, self.size)
        for polygons in au_regions(self.identity, self.size).values():
            region = polygon_mask(transform_polygons(polygons, matrix), self.size)
            if (covered & region).sum() > 0.35 * max(region.sum(), 1):
                return frame
        return dataclasses.replace(frame, occluder=occluder)

    def point(self, x: float, y: float) -> np.ndarray:
        """A canonical 112-unit point in fixed-point pixels for OpenCV."""
        return _fixed(np.array([[x, y]]) * self.s)[0]

    def polyline(self, canvas, xy: np.ndarray, color, thickness: float = 1.0, closed: bool = False) -> None:
        """Anti-aliased polyline through (n, 2) canonical points."""
        cv2.polylines(
            canvas, [_fixed(xy * self.s)], closed, _rgb(color), max(1, round(thickness * self.s)), cv2.LINE_AA, _SHIFT
        )

    def fill(self, canvas, xy: np.ndarray, color) -> None:
        """Anti-aliased filled polygon through (n, 2) canonical points."""
        if len(xy) >= 3:
            cv2.fillPoly(canvas, [_fixed(xy * self.s)], _rgb(color), cv2.LINE_AA, _SHIFT)

    def ellipse(self, canvas, center, axes, color, angle: float = 0.0) -> None:
        """Anti-aliased filled ellipse in canonical units."""
        cv2.ellipse(
            canvas,
            tuple(int(v) for v in self.point(*center)),
            tuple(int(v) for v in _fixed(np.array(axes) * self.s)),
            angle,
            0,
            360,
            _rgb(color),
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )

    def _static_layer(self) -> np.ndarray:
        """Background, hair, ears, neck, face oval, fringe and nose: everything no AU moves."""
        i, size = self.identity, self.size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / self.s
        shade = 0.8 + 0.4 * yy / CANONICAL_SIZE
        canvas = np.clip(np.array(i.background, np.float32) * shade[..., None], 0, 255).astype(np.uint8)
        if i.hair_style in (0, 1):
            self.ellipse(canvas, (i.cx, i.cy - 5), (i.ax + 5, i.ay + 2), i.hair)
        if i.hair_style == 1:
            self.fill(
                canvas,
                np.array(
                    [
                        [i.cx - i.ax - 6, i.cy - 5],
                        [i.cx + i.ax + 6, i.cy - 5],
                        [i.cx + i.ax + 4, 112.0],
                        [i.cx - i.ax - 4, 112.0],
                    ]
                ),
                i.hair,
            )
        neck = np.array(
            [
                [i.cx - 0.55 * i.ax, i.cy],
                [i.cx + 0.55 * i.ax, i.cy],
                [i.cx + 0.6 * i.ax, 112.0],
                [i.cx - 0.6 * i.ax, 112.0],
            ]
        )
        self.fill(canvas, neck, _scale(i.skin, 0.82))
        for side in (-1, 1):
            self.ellipse(canvas, (i.cx + side * (i.ax - 1), i.eye_y + 5), (4.0, 8.0), _scale(i.skin, 0.93))
        self.ellipse(canvas, (i.cx, i.cy), (i.ax, i.ay), i.skin)
        # Fringe: hair above a wavy hairline, only inside the head outline (alpha for a soft edge).
        line = i.hairline - 2.5 * np.cos((xx - i.cx) / i.ax * 2.2) + (i.hair_style == 2) * -6.0
        head = ((xx - i.cx) / (i.ax + 5)) ** 2 + ((yy - i.cy + 5) / (i.ay + 2)) ** 2 <= 1
        alpha = (np.clip(line - yy + 0.5, 0, 1) * head)[..., None]
        hair = _scale(i.hair, 1.0) if i.hair_style != 2 else _scale(i.skin, 0.75)
        canvas = (canvas * (1 - alpha) + np.array(hair, np.float32) * alpha + 0.5).astype(np.uint8)
        nose_line = _scale(i.skin, 0.84)
        for side in (-1, 1):
            self.polyline(
                canvas,
                np.array(
                    [
                        [i.cx + side * 3.0, i.eye_y + 2],
                        [i.cx + side * 3.5, i.nose_y - 6],
                        [i.cx + side * 0.6 * i.nose_hw, i.nose_y - 2],
                    ]
                ),
                nose_line,
            )
            wing = arc((i.cx + side * 0.75 * i.nose_hw, i.nose_y), (2.6, 3.0), 10.0 - 90 * side, 160.0)
            self.polyline(canvas, wing, _scale(i.skin, 0.75))
        self.ellipse(canvas, (i.cx, i.nose_y - 0.5), (0.45 * i.nose_hw, 2.6), _scale(i.skin, 1.06))
        return canvas

    def _draw_occluder(self, image: np.ndarray, occluder: tuple) -> None:
        kind, x, y, size, angle, *color = occluder
        if kind == 0:
            self.ellipse(image, (x, y), (size, 0.7 * size), color, angle)
        else:
            box = cv2.boxPoints(((x, y), (2.2 * size, 0.55 * size), angle))
            self.fill(image, box, color)


def _mirror(cx: float, inner: float, outer: float, top: float, bottom: float) -> list[tuple]:
    """Left and right boxes spanning |x - cx| in [inner, outer]."""
    return [(cx - outer, top, cx - inner, bottom), (cx + inner, top, cx + outer, bottom)]


def _ordered(x0: float, y0: float, x1: float, y1: float) -> tuple:
    return min(x0, x1), y0, max(x0, x1), y1


def _fixed(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy) * (1 << _SHIFT)).astype(np.int32)


def _scale(color, factor: float) -> tuple:
    return _rgb(np.asarray(color, np.float64) * factor)


def _rgb(color) -> tuple:
    return tuple(min(255, max(0, int(round(float(v))))) for v in color)
