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

`geometry.au_regions` gives, for each AU, the boxes (polygons after the pose) outside which it changes no pixel.
"""

import dataclasses

import cv2
import numpy as np

from .features import arc, draw_features
from .geometry import (
    CANONICAL_SIZE,
    FIXED_POINT_BITS,
    FrameConditions,
    HairStyle,
    Identity,
    Occluder,
    OccluderShape,
    au_regions,
    fixed_point,
    polygon_mask,
    pose_matrix,
    rgb,
    transform_polygons,
)

MIN_STRENGTH = 0.3  # drawing strength of an AU at intensity -> 0+; strength is 1 at intensity 1


def strengths(intensities) -> np.ndarray:
    """(12,) drawing strengths: 0 for an inactive AU, `0.3 + 0.7 a` for an active one of intensity `a`."""
    intensity = np.clip(np.asarray(intensities, dtype=np.float64), 0.0, 1.0)
    return np.where(intensity > 0, MIN_STRENGTH + (1 - MIN_STRENGTH) * intensity, 0.0)


class FaceRenderer:
    """Draws one identity: the static part once, then the AU-dependent part and nuisance per frame."""

    def __init__(self, identity: Identity, image_size: int = CANONICAL_SIZE):
        self.identity, self.size, self.scale = identity, image_size, image_size / CANONICAL_SIZE
        self.base = self._static_layer()
        grid = (np.arange(image_size, dtype=np.float32) - image_size / 2) / image_size
        self._grid_x, self._grid_y = np.meshgrid(grid, grid)

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
        direction = conditions.light_direction
        light = conditions.gain * (
            1 + conditions.slope * (np.cos(direction) * self._grid_x + np.sin(direction) * self._grid_y)
        )
        out = image.astype(np.float32) * light[..., None]
        if conditions.noise > 0 and rng is not None:
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(conditions.noise)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def sample_conditions(self, rng: np.random.Generator, num_frames: int) -> list[FrameConditions]:
        """Per-frame nuisance of one video: smooth pose and lighting drift, noise, JPEG quality, rare occluders.

        Pose: rotation within 5 degrees, scale within 4 %, shift within 3 units, as slow sinusoids plus jitter.
        Lighting: gain 0.85-1.15 and a linear gradient of slope within 0.25 across the frame. Noise sigma 1-4
        grey levels; JPEG quality 75-95. An occluder (ellipse or bar near the frame border) appears in 3 % of
        frames and is dropped if it would cover more than 35 % of any AU's region.
        """
        frames = np.arange(num_frames)[:, None]
        waves = np.sin(2 * np.pi * frames / rng.uniform(40, 120, 4) + rng.uniform(0, 2 * np.pi, 4))  # (frames, 4)
        jitter = rng.normal(0, 1, (num_frames, 4)) * (0.3, 0.003, 0.2, 0.2)
        pose = waves * rng.uniform(0, 1, 4) * (5.0, 0.04, 3.0, 3.0) + jitter  # angle, scale - 1, shift x, shift y
        gain = rng.uniform(0.85, 1.15) + 0.03 * np.sin(
            2 * np.pi * frames[:, 0] / rng.uniform(60, 200) + rng.uniform(0, 6.3)
        )
        slope, light_direction = rng.uniform(-0.25, 0.25), rng.uniform(0, 2 * np.pi)
        noise, quality = rng.uniform(1.0, 4.0, num_frames), rng.integers(75, 96, num_frames)
        occluded = rng.random(num_frames) < 0.03
        conditions = []
        for index in range(num_frames):
            angle, scale_change, shift_x, shift_y = pose[index]
            frame = FrameConditions(
                angle=angle,
                scale=1 + scale_change,
                shift_x=shift_x,
                shift_y=shift_y,
                gain=float(gain[index]),
                slope=slope,
                light_direction=light_direction,
                noise=float(noise[index]),
                quality=int(quality[index]),
            )
            if occluded[index]:
                frame = self._with_occluder(rng, frame)
            conditions.append(frame)
        return conditions

    def _with_occluder(self, rng: np.random.Generator, frame: FrameConditions) -> FrameConditions:
        """`frame` with a random border occluder, or unchanged if it would hide too much of an AU region."""
        angle = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(47.0, 56.0)
        color = tuple(rng.integers(30, 230, 3).tolist())
        occluder = Occluder(
            shape=OccluderShape(int(rng.integers(len(OccluderShape)))),
            x=56 + radius * np.cos(angle),
            y=56 + radius * np.sin(angle),
            size=rng.uniform(8.0, 14.0),
            angle=rng.uniform(0, 180),
            color=color,
        )
        covered = np.zeros((self.size, self.size, 3), np.uint8)
        self._draw_occluder(covered, dataclasses.replace(occluder, color=(255, 255, 255)))
        covered = covered[..., 0] > 0
        matrix = pose_matrix(self.identity, frame, self.size)
        for polygons in au_regions(self.identity, self.size).values():
            region = polygon_mask(transform_polygons(polygons, matrix), self.size)
            if (covered & region).sum() > 0.35 * max(region.sum(), 1):
                return frame
        return dataclasses.replace(frame, occluder=occluder)

    def point(self, x: float, y: float) -> np.ndarray:
        """A canonical 112-unit point in fixed-point pixels for OpenCV."""
        return fixed_point(np.array([[x, y]]) * self.scale)[0]

    def polyline(self, canvas, xy: np.ndarray, color, thickness: float = 1.0, closed: bool = False) -> None:
        """Anti-aliased polyline through (n, 2) canonical points."""
        cv2.polylines(
            canvas,
            [fixed_point(xy * self.scale)],
            closed,
            rgb(color),
            max(1, round(thickness * self.scale)),
            cv2.LINE_AA,
            FIXED_POINT_BITS,
        )

    def fill(self, canvas, xy: np.ndarray, color) -> None:
        """Anti-aliased filled polygon through (n, 2) canonical points."""
        if len(xy) >= 3:
            cv2.fillPoly(canvas, [fixed_point(xy * self.scale)], rgb(color), cv2.LINE_AA, FIXED_POINT_BITS)

    def ellipse(self, canvas, center, axes, color, angle: float = 0.0) -> None:
        """Anti-aliased filled ellipse in canonical units."""
        cv2.ellipse(
            canvas,
            tuple(int(v) for v in self.point(*center)),
            tuple(int(v) for v in fixed_point(np.array(axes) * self.scale)),
            angle,
            0,
            360,
            rgb(color),
            -1,
            cv2.LINE_AA,
            FIXED_POINT_BITS,
        )

    def _static_layer(self) -> np.ndarray:
        """Background, hair, ears, neck, face oval, fringe and nose: everything no AU moves."""
        face, size = self.identity, self.size
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / self.scale
        shade = 0.8 + 0.4 * y / CANONICAL_SIZE
        canvas = np.clip(np.array(face.background, np.float32) * shade[..., None], 0, 255).astype(np.uint8)
        if face.hair_style in (HairStyle.SHORT, HairStyle.LONG):
            self.ellipse(
                canvas, (face.center_x, face.center_y - 5), (face.half_width + 5, face.half_height + 2), face.hair
            )
        if face.hair_style == HairStyle.LONG:
            self.fill(
                canvas,
                np.array(
                    [
                        [face.center_x - face.half_width - 6, face.center_y - 5],
                        [face.center_x + face.half_width + 6, face.center_y - 5],
                        [face.center_x + face.half_width + 4, 112.0],
                        [face.center_x - face.half_width - 4, 112.0],
                    ]
                ),
                face.hair,
            )
        neck = np.array(
            [
                [face.center_x - 0.55 * face.half_width, face.center_y],
                [face.center_x + 0.55 * face.half_width, face.center_y],
                [face.center_x + 0.6 * face.half_width, 112.0],
                [face.center_x - 0.6 * face.half_width, 112.0],
            ]
        )
        self.fill(canvas, neck, _scale(face.skin, 0.82))
        for side in (-1, 1):
            self.ellipse(
                canvas,
                (face.center_x + side * (face.half_width - 1), face.eye_y + 5),
                (4.0, 8.0),
                _scale(face.skin, 0.93),
            )
        self.ellipse(canvas, (face.center_x, face.center_y), (face.half_width, face.half_height), face.skin)
        # Fringe: hair above a wavy hairline, only inside the head outline (alpha for a soft edge).
        line = (
            face.hairline
            - 2.5 * np.cos((x - face.center_x) / face.half_width * 2.2)
            + (face.hair_style == HairStyle.SHAVED) * -6.0
        )
        head = ((x - face.center_x) / (face.half_width + 5)) ** 2 + (
            (y - face.center_y + 5) / (face.half_height + 2)
        ) ** 2 <= 1
        alpha = (np.clip(line - y + 0.5, 0, 1) * head)[..., None]
        hair = _scale(face.hair, 1.0) if face.hair_style != HairStyle.SHAVED else _scale(face.skin, 0.75)
        canvas = (canvas * (1 - alpha) + np.array(hair, np.float32) * alpha + 0.5).astype(np.uint8)
        nose_line = _scale(face.skin, 0.84)
        for side in (-1, 1):
            self.polyline(
                canvas,
                np.array(
                    [
                        [face.center_x + side * 3.0, face.eye_y + 2],
                        [face.center_x + side * 3.5, face.nose_y - 6],
                        [face.center_x + side * 0.6 * face.nose_half_width, face.nose_y - 2],
                    ]
                ),
                nose_line,
            )
            wing = arc(
                (face.center_x + side * 0.75 * face.nose_half_width, face.nose_y), (2.6, 3.0), 10.0 - 90 * side, 160.0
            )
            self.polyline(canvas, wing, _scale(face.skin, 0.75))
        self.ellipse(
            canvas, (face.center_x, face.nose_y - 0.5), (0.45 * face.nose_half_width, 2.6), _scale(face.skin, 1.06)
        )
        return canvas

    def _draw_occluder(self, image: np.ndarray, occluder: Occluder) -> None:
        """Draw `occluder` onto the posed `image` (in place)."""
        center, size = (occluder.x, occluder.y), occluder.size
        if occluder.shape == OccluderShape.ELLIPSE:
            self.ellipse(image, center, (size, 0.7 * size), occluder.color, occluder.angle)
        else:
            box = cv2.boxPoints((center, (2.2 * size, 0.55 * size), occluder.angle))
            self.fill(image, box, occluder.color)


def _scale(color, factor: float) -> tuple:
    """`color` times `factor`, as an RGB tuple."""
    return rgb(np.asarray(color, np.float64) * factor)
