"""The AU-dependent parts of a synthetic face: brows, eyes, cheeks, nostrils, folds, lips and chin.

Each function draws one feature from the face's landmarks (`pen.identity`, 112 px units) and the drawing
strengths of the AUs that move it (see `faces.py` for what each AU draws). `pen` is a
`faces.FaceRenderer`, which scales units to pixels and draws anti-aliased primitives.
"""

import cv2
import numpy as np

from ..configuration_au_mlt import ABAW_AUS

# Sample grids along features (constant, so built once).
_EYE_SPAN = np.linspace(-1, 1, 15)  # -1 inner corner, +1 outer corner
_DISC = np.linspace(-1, 1, 13)  # across a disc, and along the lip bulges
_BROW_SPAN = np.linspace(0, 1, 13)  # 0 inner end, 1 outer end
_WRINKLE = np.linspace(-1, 1, 7)
_MOUTH_SPAN = np.linspace(-1, 1, 21)  # -1 left corner, +1 right corner
_BEZIER = np.linspace(0, 1, 9)[:, None]  # curve parameter of a quadratic Bezier
_TEETH, _CAVITY, _EYE_WHITE, _LASH, _PUPIL = (236, 230, 214), (55, 18, 24), (236, 233, 228), (45, 35, 35), (18, 14, 14)


def draw_features(canvas: np.ndarray, pen, strength: np.ndarray) -> None:
    """Draw every AU-dependent feature onto `canvas` (H, W, 3) for the (12,) drawing strengths."""
    strength_of = dict(zip(ABAW_AUS, strength.tolist()))
    _chin(canvas, pen, strength_of["AU26"])
    _cheeks(canvas, pen, strength_of["AU6"])
    _nasolabial_folds(canvas, pen, strength_of["AU10"])
    for side in (-1, 1):
        _eye(canvas, pen, side, strength_of["AU6"], strength_of["AU7"])
    _brows(canvas, pen, strength_of["AU1"], strength_of["AU2"], strength_of["AU4"])
    _nostrils(canvas, pen, strength_of["AU10"])
    _mouth(canvas, pen, strength_of)


def arc(center, axes, start_deg: float, span_deg: float, points: int = 9) -> np.ndarray:
    """(points, 2) points along an elliptical arc (angles clockwise from +x, image coordinates)."""
    angles = np.deg2rad(start_deg + span_deg * np.linspace(0, 1, points))
    return np.stack([center[0] + axes[0] * np.cos(angles), center[1] + axes[1] * np.sin(angles)], axis=1)


def _points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 2) points from their x and y coordinates."""
    return np.column_stack((x, y))


def _darker(color, strength: float, depth: float = 0.45) -> tuple:
    """A line colour: `color` darkened more for a stronger AU (never invisible for an active one)."""
    return tuple(float(channel) * (1 - depth * (0.4 + 0.6 * strength)) for channel in color)


def _chin(canvas, pen, jaw_drop: float) -> None:
    """AU26: the lower face outline, shifted down with the jaw."""
    if jaw_drop <= 0:
        return
    face = pen.identity
    pen.fill(
        canvas,
        arc((face.center_x, face.center_y + 5.0 * jaw_drop), (face.half_width, face.half_height), 35.0, 110.0, 15),
        face.skin,
    )


def _cheeks(canvas, pen, cheek_raiser: float) -> None:
    """AU6: a lighter, raised cheek below each eye (blended so it stays soft)."""
    if cheek_raiser <= 0:
        return
    face = pen.identity
    overlay = canvas.copy()
    light = tuple(min(255.0, channel * 1.12 + 6) for channel in face.skin)
    for side in (-1, 1):
        pen.ellipse(
            overlay,
            (face.center_x + side * (face.eye_offset + 1.0), face.eye_y + face.eye_lower_height + 8.0),
            (7.5, 4.5),
            light,
        )
    cv2.addWeighted(overlay, 0.3 + 0.4 * cheek_raiser, canvas, 0.7 - 0.4 * cheek_raiser, 0.0, dst=canvas)


def _nasolabial_folds(canvas, pen, upper_lip_raiser: float) -> None:
    """AU10: folds from the nose wings down to beside the mouth corners."""
    if upper_lip_raiser <= 0:
        return
    face, steps = pen.identity, _BEZIER
    for side in (-1, 1):
        p0 = np.array([face.center_x + side * (face.nose_half_width + 0.5), face.nose_y - 1.0])
        p1 = np.array([face.center_x + side * (face.nose_half_width + 4.5), face.nose_y + 6.0])
        p2 = np.array([face.center_x + side * (face.mouth_half_width + 2.0), face.mouth_y + 0.5])
        curve = (1 - steps) ** 2 * p0 + 2 * steps * (1 - steps) * p1 + steps**2 * p2
        pen.polyline(canvas, curve, _darker(face.skin, upper_lip_raiser), 1.2)


def _eye(canvas, pen, side: int, cheek_raiser: float, lid_tightener: float) -> None:
    """Eye white, clipped iris and pupil, lid lines and lid crease; AU7 narrows it, AU6 adds crow's feet."""
    face = pen.identity
    eye_x, eye_y = face.center_x + side * face.eye_offset, face.eye_y
    along = _EYE_SPAN
    x, tilt, bump = eye_x + side * along * face.eye_half_width, eye_y - 0.6 * along, (1 - along**2) ** 0.7
    upper = tilt - face.eye_upper_height * (1 - 0.45 * lid_tightener) * bump
    lower = tilt + face.eye_lower_height * (1 - 0.5 * lid_tightener - 0.25 * cheek_raiser) * bump
    pen.fill(canvas, np.concatenate([_points(x, upper), _points(x, lower)[::-1]]), _EYE_WHITE)
    order = np.argsort(x)
    for radius, color in ((face.iris_radius, face.iris), (0.45 * face.iris_radius, _PUPIL)):
        pen.fill(
            canvas, _clipped_disc(eye_x + face.gaze, eye_y - 0.4, radius, x[order], upper[order], lower[order]), color
        )
    pen.polyline(canvas, _points(x, upper), _LASH, 1.6)
    pen.polyline(canvas, _points(x, lower), _darker(face.skin, 0.5, 0.4), 0.9)
    crease = slice(2, 13)
    pen.polyline(canvas, _points(x[crease], upper[crease] - 2.2), _darker(face.skin, 0.3, 0.3), 0.9)
    if cheek_raiser > 0:
        line = _darker(face.skin, cheek_raiser)
        for offset_y in (-1.5, 0.5, 2.5):
            pen.polyline(
                canvas,
                np.array(
                    [
                        [eye_x + side * (face.eye_half_width + 1.5), eye_y + offset_y],
                        [eye_x + side * (face.eye_half_width + 6.0), eye_y + 2.2 * offset_y],
                    ]
                ),
                line,
                0.9,
            )
        bulge = slice(1, 14)
        pen.polyline(canvas, _points(x[bulge], lower[bulge] + 2.2 + 0.8 * bump[bulge]), line, 1.0)


def _clipped_disc(
    center_x: float, center_y: float, radius: float, x: np.ndarray, upper: np.ndarray, lower: np.ndarray
) -> np.ndarray:
    """Polygon of the disc (center_x, center_y, radius) cut to the eye opening between `upper` and `lower`
    (`x` increasing)."""
    disc_x = center_x + radius * _DISC
    half = np.sqrt(np.maximum(radius**2 - (disc_x - center_x) ** 2, 0.0))
    top = np.maximum(center_y - half, np.interp(disc_x, x, upper))
    bottom = np.minimum(center_y + half, np.interp(disc_x, x, lower))
    keep = bottom > top
    return np.concatenate([_points(disc_x[keep], top[keep]), _points(disc_x[keep], bottom[keep])[::-1]])


def _brows(canvas, pen, inner_brow_raiser: float, outer_brow_raiser: float, brow_lowerer: float) -> None:
    """Tapered brows: AU1 lifts the inner 60 %, AU2 the outer 60 %, AU4 lowers and draws them together."""
    face = pen.identity
    along = _BROW_SPAN
    inner_lift, outer_lift = np.clip(1 - along / 0.6, 0, 1) ** 1.2, np.clip((along - 0.4) / 0.6, 0, 1) ** 1.2
    rest = face.brow_y - face.brow_arch * np.sin(np.pi * (0.15 + 0.75 * along)) + along
    y = (
        rest
        - 7.0 * inner_brow_raiser * inner_lift
        - 7.0 * outer_brow_raiser * outer_lift
        + brow_lowerer * (2.0 + 2.0 * (1 - along))
    )
    half = face.brow_thickness * (1 - 0.45 * along) / 2
    for side in (-1, 1):
        x = face.center_x + side * (
            face.brow_inner + along * (face.brow_outer - face.brow_inner) - 3.0 * brow_lowerer * (1 - along) ** 2
        )
        pen.fill(canvas, np.concatenate([_points(x, y - half), _points(x, y + half)[::-1]]), face.brow)
        if outer_brow_raiser > 0:
            outer = along >= 0.45
            pen.polyline(
                canvas, _points(x[outer], (y - half - 3.5)[outer]), _darker(face.skin, outer_brow_raiser, 0.35), 0.9
            )
    if inner_brow_raiser > 0:
        for row in range(2):
            wrinkle_x = _WRINKLE
            pen.polyline(
                canvas,
                _points(
                    face.center_x + (7.0 + 2.0 * row) * wrinkle_x,
                    face.brow_y - 12.5 - 3.5 * row - 0.8 * (1 - wrinkle_x**2),
                ),
                _darker(face.skin, inner_brow_raiser, 0.35),
                0.9,
            )
    if brow_lowerer > 0:
        for side in (-1, 1):
            pen.polyline(
                canvas,
                np.array(
                    [[face.center_x + side * 2.2, face.brow_y - 2.5], [face.center_x + side * 1.5, face.brow_y + 4.0]]
                ),
                _darker(face.skin, brow_lowerer),
                1.0,
            )


def _nostrils(canvas, pen, upper_lip_raiser: float) -> None:
    """Nostrils; AU10 widens and lifts them."""
    face = pen.identity
    for side in (-1, 1):
        pen.ellipse(
            canvas,
            (face.center_x + side * 0.55 * face.nose_half_width, face.nose_y + 1.5 - 1.5 * upper_lip_raiser),
            (1.9 * (1 + 0.5 * upper_lip_raiser), 1.0 * (1 + 0.4 * upper_lip_raiser)),
            _darker(face.skin, 1.0, 0.6),
            side * 15.0,
        )


def _mouth(canvas, pen, strength_of: dict) -> None:
    """Lips, teeth and mouth cavity, shaped by AU10/12/15/23/24/25/26, plus their creases and bulges."""
    face = pen.identity
    along = _MOUTH_SPAN
    corner = np.clip((np.abs(along) - 0.35) / 0.65, 0, 1) ** 1.5
    x = (
        face.center_x
        + along * face.mouth_half_width * (1 - 0.3 * strength_of["AU23"])
        + np.sign(along) * 2.0 * strength_of["AU12"] * corner
    )
    line = (
        face.mouth_y + face.mouth_curve * along**2 + (6.0 * strength_of["AU15"] - 7.0 * strength_of["AU12"]) * corner
    )
    thin = (1 - 0.5 * strength_of["AU23"]) * (1 - 0.7 * strength_of["AU24"])
    middle = (1 - along**2) ** 0.8
    upper_inner = line - (2.5 * strength_of["AU25"] + 3.5 * strength_of["AU10"]) * middle
    upper_outer = upper_inner - face.upper_lip_height * thin * (1 - along**2) ** 0.6 * (
        1 - 0.3 * np.exp(-((along / 0.18) ** 2))
    )
    lower_inner = line + (3.5 * strength_of["AU25"] + 8.0 * strength_of["AU26"]) * middle
    lower_outer = lower_inner + face.lower_lip_height * thin * (1 - along**2) ** 0.6
    lip = _darker(face.lip, strength_of["AU23"], 0.35) if strength_of["AU23"] > 0 else face.lip
    # Pressed lips pale towards the skin.
    lip = tuple(channel + 0.45 * strength_of["AU24"] * (0.9 * skin - channel) for channel, skin in zip(lip, face.skin))
    if np.max(lower_inner - upper_inner) > 0.05:
        pen.fill(canvas, np.concatenate([_points(x, upper_inner), _points(x, lower_inner)[::-1]]), _CAVITY)
        teeth = np.minimum(
            upper_inner + (3.0 * strength_of["AU25"] + 2.5 * strength_of["AU10"]) * np.sqrt(1 - along**2), lower_inner
        )
        if np.max(teeth - upper_inner) > 0.05:
            pen.fill(canvas, np.concatenate([_points(x, upper_inner), _points(x, teeth)[::-1]]), _TEETH)
    pen.fill(
        canvas,
        np.concatenate([_points(x, upper_outer), _points(x, upper_inner)[::-1]]),
        tuple(0.88 * channel for channel in lip),
    )
    pen.fill(canvas, np.concatenate([_points(x, lower_inner), _points(x, lower_outer)[::-1]]), lip)
    if np.max(lower_inner - upper_inner) <= 0.05:
        pen.polyline(
            canvas,
            _points(x, upper_inner),
            _darker(lip, 0.5 + 0.5 * strength_of["AU24"], 0.6),
            1.0 + 2.2 * strength_of["AU24"],
        )
    _mouth_lines(canvas, pen, strength_of, x, line, upper_inner, upper_outer, lower_inner, lower_outer)


def _mouth_lines(canvas, pen, strength_of: dict, x, line, upper_inner, upper_outer, lower_inner, lower_outer) -> None:
    """AU12 smile creases, AU15 corner creases, AU23 vertical lip wrinkles, AU24 bulges."""
    skin = pen.identity.skin
    for side, end in ((-1, 0), (1, -1)):
        corner_x, corner_y = x[end], line[end]
        if strength_of["AU12"] > 0:
            crease = np.array(
                [
                    [corner_x + side * 2.2, corner_y - 3.5],
                    [corner_x + side * 3.2, corner_y - 0.5],
                    [corner_x + side * 2.5, corner_y + 2.0],
                ]
            )
            pen.polyline(canvas, crease, _darker(skin, strength_of["AU12"], 0.5), 1.2)
        if strength_of["AU15"] > 0:
            crease = np.array(
                [
                    [corner_x + side * 1.0, corner_y + 1.5],
                    [corner_x + side * 2.2, corner_y + 5.5],
                    [corner_x + side * 2.6, corner_y + 7.0],
                ]
            )
            pen.polyline(canvas, crease, _darker(skin, strength_of["AU15"], 0.5), 1.2)
    if strength_of["AU23"] > 0:
        for column in (5, 8, 12, 15):  # along the mouth: -0.5, -0.2, 0.2, 0.5
            color = _darker(pen.identity.lip, strength_of["AU23"], 0.65)
            pen.polyline(
                canvas,
                np.array([[x[column], upper_outer[column] + 0.3], [x[column], upper_inner[column] - 0.2]]),
                color,
                0.8,
            )
            pen.polyline(
                canvas,
                np.array([[x[column], lower_inner[column] + 0.2], [x[column], lower_outer[column] - 0.3]]),
                color,
                0.8,
            )
    if strength_of["AU24"] > 0:
        inner = slice(4, 17)  # |along| <= 0.6
        dome = 0.6 * (1 - _DISC**2)
        shade = _darker(skin, strength_of["AU24"], 0.55)
        pen.polyline(canvas, _points(x[inner], upper_outer[inner] - 2.2 - dome), shade, 1.3)
        pen.polyline(canvas, _points(x[inner], lower_outer[inner] + 2.2 + dome), shade, 1.3)
