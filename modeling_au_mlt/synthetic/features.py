"""The AU-dependent parts of a synthetic face: brows, eyes, cheeks, nostrils, folds, lips and chin.

Each function draws one feature from the face's landmarks (`pen.identity`, 112 px units) and the drawing
strengths of the AUs that move it (see `synthetic_faces` for what each AU draws). `pen` is a
`synthetic_faces.FaceRenderer`, which scales units to pixels and draws anti-aliased primitives.
"""

import cv2
import numpy as np

from ..configuration_au_mlt import ABAW_AUS

# Sample grids along features (constant, so built once).
_EYE_V = np.linspace(-1, 1, 15)  # -1 inner corner, +1 outer corner
_DISC = np.linspace(-1, 1, 13)
_BROW_U = np.linspace(0, 1, 13)  # 0 inner end, 1 outer end
_WRINKLE = np.linspace(-1, 1, 7)
_MOUTH_U = np.linspace(-1, 1, 21)  # -1 left corner, +1 right corner
_BEZIER = np.linspace(0, 1, 9)[:, None]
_TEETH, _CAVITY, _EYE_WHITE, _LASH, _PUPIL = (236, 230, 214), (55, 18, 24), (236, 233, 228), (45, 35, 35), (18, 14, 14)


def draw_features(canvas: np.ndarray, pen, strength: np.ndarray) -> None:
    """Draw every AU-dependent feature onto `canvas` (H, W, 3) for the (12,) drawing strengths."""
    f = dict(zip(ABAW_AUS, strength.tolist()))
    _chin(canvas, pen, f["AU26"])
    _cheeks(canvas, pen, f["AU6"])
    _nasolabial_folds(canvas, pen, f["AU10"])
    for side in (-1, 1):
        _eye(canvas, pen, side, f["AU6"], f["AU7"])
    _brows(canvas, pen, f["AU1"], f["AU2"], f["AU4"])
    _nostrils(canvas, pen, f["AU10"])
    _mouth(canvas, pen, f)


def arc(center, axes, start_deg: float, span_deg: float, points: int = 9) -> np.ndarray:
    """(points, 2) points along an elliptical arc (angles clockwise from +x, image coordinates)."""
    t = np.deg2rad(start_deg + span_deg * np.linspace(0, 1, points))
    return np.stack([center[0] + axes[0] * np.cos(t), center[1] + axes[1] * np.sin(t)], axis=1)


def _xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack((x, y))


def _darker(color, strength: float, depth: float = 0.45) -> tuple:
    """A line colour: `color` darkened more for a stronger AU (never invisible for an active one)."""
    return tuple(float(c) * (1 - depth * (0.4 + 0.6 * strength)) for c in color)


def _chin(canvas, pen, f26: float) -> None:
    """AU26: the lower face outline, shifted down with the jaw."""
    if f26 <= 0:
        return
    i = pen.identity
    pen.fill(canvas, arc((i.cx, i.cy + 5.0 * f26), (i.ax, i.ay), 35.0, 110.0, 15), i.skin)


def _cheeks(canvas, pen, f6: float) -> None:
    """AU6: a lighter, raised cheek below each eye (blended so it stays soft)."""
    if f6 <= 0:
        return
    i = pen.identity
    overlay = canvas.copy()
    light = tuple(min(255.0, c * 1.12 + 6) for c in i.skin)
    for side in (-1, 1):
        pen.ellipse(overlay, (i.cx + side * (i.eye_dx + 1.0), i.eye_y + i.eye_hl + 8.0), (7.5, 4.5), light)
    cv2.addWeighted(overlay, 0.3 + 0.4 * f6, canvas, 0.7 - 0.4 * f6, 0.0, dst=canvas)


def _nasolabial_folds(canvas, pen, f10: float) -> None:
    """AU10: folds from the nose wings down to beside the mouth corners."""
    if f10 <= 0:
        return
    i, t = pen.identity, _BEZIER
    for side in (-1, 1):
        p0 = np.array([i.cx + side * (i.nose_hw + 0.5), i.nose_y - 1.0])
        p1 = np.array([i.cx + side * (i.nose_hw + 4.5), i.nose_y + 6.0])
        p2 = np.array([i.cx + side * (i.mouth_hw + 2.0), i.mouth_y + 0.5])
        curve = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
        pen.polyline(canvas, curve, _darker(i.skin, f10), 1.2)


def _eye(canvas, pen, side: int, f6: float, f7: float) -> None:
    """Eye white, clipped iris and pupil, lid lines and lid crease; AU7 narrows it, AU6 adds crow's feet."""
    i = pen.identity
    ex, ey = i.cx + side * i.eye_dx, i.eye_y
    v = _EYE_V
    x, tilt, bump = ex + side * v * i.eye_hw, ey - 0.6 * v, (1 - v**2) ** 0.7
    upper = tilt - i.eye_hu * (1 - 0.45 * f7) * bump
    lower = tilt + i.eye_hl * (1 - 0.5 * f7 - 0.25 * f6) * bump
    pen.fill(canvas, np.concatenate([_xy(x, upper), _xy(x, lower)[::-1]]), _EYE_WHITE)
    order = np.argsort(x)
    for radius, color in ((i.iris_r, i.iris), (0.45 * i.iris_r, _PUPIL)):
        pen.fill(canvas, _clipped_disc(ex + i.gaze, ey - 0.4, radius, x[order], upper[order], lower[order]), color)
    pen.polyline(canvas, _xy(x, upper), _LASH, 1.6)
    pen.polyline(canvas, _xy(x, lower), _darker(i.skin, 0.5, 0.4), 0.9)
    crease = slice(2, 13)
    pen.polyline(canvas, _xy(x[crease], upper[crease] - 2.2), _darker(i.skin, 0.3, 0.3), 0.9)
    if f6 > 0:
        line = _darker(i.skin, f6)
        for dy in (-1.5, 0.5, 2.5):
            pen.polyline(
                canvas,
                np.array([[ex + side * (i.eye_hw + 1.5), ey + dy], [ex + side * (i.eye_hw + 6.0), ey + 2.2 * dy]]),
                line,
                0.9,
            )
        bulge = slice(1, 14)
        pen.polyline(canvas, _xy(x[bulge], lower[bulge] + 2.2 + 0.8 * bump[bulge]), line, 1.0)


def _clipped_disc(cx: float, cy: float, r: float, x: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Polygon of the disc (cx, cy, r) cut to the eye opening between `upper` and `lower` (x increasing)."""
    xs = cx + r * _DISC
    half = np.sqrt(np.maximum(r**2 - (xs - cx) ** 2, 0.0))
    top = np.maximum(cy - half, np.interp(xs, x, upper))
    bottom = np.minimum(cy + half, np.interp(xs, x, lower))
    keep = bottom > top
    return np.concatenate([_xy(xs[keep], top[keep]), _xy(xs[keep], bottom[keep])[::-1]])


def _brows(canvas, pen, f1: float, f2: float, f4: float) -> None:
    """Tapered brows: AU1 lifts the inner 60 %, AU2 the outer 60 %, AU4 lowers and draws them together."""
    i = pen.identity
    u = _BROW_U
    lift1, lift2 = np.clip(1 - u / 0.6, 0, 1) ** 1.2, np.clip((u - 0.4) / 0.6, 0, 1) ** 1.2
    rest = i.brow_y - i.brow_arch * np.sin(np.pi * (0.15 + 0.75 * u)) + u
    y = rest - 7.0 * f1 * lift1 - 7.0 * f2 * lift2 + f4 * (2.0 + 2.0 * (1 - u))
    half = i.brow_thick * (1 - 0.45 * u) / 2
    for side in (-1, 1):
        x = i.cx + side * (i.brow_inner + u * (i.brow_outer - i.brow_inner) - 3.0 * f4 * (1 - u) ** 2)
        pen.fill(canvas, np.concatenate([_xy(x, y - half), _xy(x, y + half)[::-1]]), i.brow)
        if f2 > 0:
            outer = u >= 0.45
            pen.polyline(canvas, _xy(x[outer], (y - half - 3.5)[outer]), _darker(i.skin, f2, 0.35), 0.9)
    if f1 > 0:
        for row in range(2):
            xs = _WRINKLE
            pen.polyline(
                canvas,
                _xy(i.cx + (7.0 + 2.0 * row) * xs, i.brow_y - 12.5 - 3.5 * row - 0.8 * (1 - xs**2)),
                _darker(i.skin, f1, 0.35),
                0.9,
            )
    if f4 > 0:
        for side in (-1, 1):
            pen.polyline(
                canvas,
                np.array([[i.cx + side * 2.2, i.brow_y - 2.5], [i.cx + side * 1.5, i.brow_y + 4.0]]),
                _darker(i.skin, f4),
                1.0,
            )


def _nostrils(canvas, pen, f10: float) -> None:
    """Nostrils; AU10 widens and lifts them."""
    i = pen.identity
    for side in (-1, 1):
        pen.ellipse(
            canvas,
            (i.cx + side * 0.55 * i.nose_hw, i.nose_y + 1.5 - 1.5 * f10),
            (1.9 * (1 + 0.5 * f10), 1.0 * (1 + 0.4 * f10)),
            _darker(i.skin, 1.0, 0.6),
            side * 15.0,
        )


def _mouth(canvas, pen, f: dict) -> None:
    """Lips, teeth and mouth cavity, shaped by AU10/12/15/23/24/25/26, plus their creases and bulges."""
    i = pen.identity
    u = _MOUTH_U
    corner = np.clip((np.abs(u) - 0.35) / 0.65, 0, 1) ** 1.5
    x = i.cx + u * i.mouth_hw * (1 - 0.3 * f["AU23"]) + np.sign(u) * 2.0 * f["AU12"] * corner
    line = i.mouth_y + i.mouth_curve * u**2 + (6.0 * f["AU15"] - 7.0 * f["AU12"]) * corner
    thin = (1 - 0.5 * f["AU23"]) * (1 - 0.7 * f["AU24"])
    middle = (1 - u**2) ** 0.8
    up_in = line - (2.5 * f["AU25"] + 3.5 * f["AU10"]) * middle
    up_out = up_in - i.lip_up * thin * (1 - u**2) ** 0.6 * (1 - 0.3 * np.exp(-((u / 0.18) ** 2)))
    lo_in = line + (3.5 * f["AU25"] + 8.0 * f["AU26"]) * middle
    lo_out = lo_in + i.lip_low * thin * (1 - u**2) ** 0.6
    lip = _darker(i.lip, f["AU23"], 0.35) if f["AU23"] > 0 else i.lip
    lip = tuple(c + 0.45 * f["AU24"] * (0.9 * k - c) for c, k in zip(lip, i.skin))  # pressed lips pale
    if np.max(lo_in - up_in) > 0.05:
        pen.fill(canvas, np.concatenate([_xy(x, up_in), _xy(x, lo_in)[::-1]]), _CAVITY)
        teeth = np.minimum(up_in + (3.0 * f["AU25"] + 2.5 * f["AU10"]) * np.sqrt(1 - u**2), lo_in)
        if np.max(teeth - up_in) > 0.05:
            pen.fill(canvas, np.concatenate([_xy(x, up_in), _xy(x, teeth)[::-1]]), _TEETH)
    pen.fill(canvas, np.concatenate([_xy(x, up_out), _xy(x, up_in)[::-1]]), tuple(0.88 * c for c in lip))
    pen.fill(canvas, np.concatenate([_xy(x, lo_in), _xy(x, lo_out)[::-1]]), lip)
    if np.max(lo_in - up_in) <= 0.05:
        pen.polyline(canvas, _xy(x, up_in), _darker(lip, 0.5 + 0.5 * f["AU24"], 0.6), 1.0 + 2.2 * f["AU24"])
    _mouth_lines(canvas, pen, f, x, line, up_in, up_out, lo_in, lo_out)


def _mouth_lines(canvas, pen, f: dict, x, line, up_in, up_out, lo_in, lo_out) -> None:
    """AU12 smile creases, AU15 corner creases, AU23 vertical lip wrinkles, AU24 bulges."""
    skin = pen.identity.skin
    for side, end in ((-1, 0), (1, -1)):
        cx, cy = x[end], line[end]
        if f["AU12"] > 0:
            crease = np.array([[cx + side * 2.2, cy - 3.5], [cx + side * 3.2, cy - 0.5], [cx + side * 2.5, cy + 2.0]])
            pen.polyline(canvas, crease, _darker(skin, f["AU12"], 0.5), 1.2)
        if f["AU15"] > 0:
            crease = np.array([[cx + side * 1.0, cy + 1.5], [cx + side * 2.2, cy + 5.5], [cx + side * 2.6, cy + 7.0]])
            pen.polyline(canvas, crease, _darker(skin, f["AU15"], 0.5), 1.2)
    if f["AU23"] > 0:
        for k in (5, 8, 12, 15):  # u = -0.5, -0.2, 0.2, 0.5
            color = _darker(pen.identity.lip, f["AU23"], 0.65)
            pen.polyline(canvas, np.array([[x[k], up_out[k] + 0.3], [x[k], up_in[k] - 0.2]]), color, 0.8)
            pen.polyline(canvas, np.array([[x[k], lo_in[k] + 0.2], [x[k], lo_out[k] - 0.3]]), color, 0.8)
    if f["AU24"] > 0:
        inner = slice(4, 17)  # |u| <= 0.6
        dome = 0.6 * (1 - _DISC**2)
        shade = _darker(skin, f["AU24"], 0.55)
        pen.polyline(canvas, _xy(x[inner], up_out[inner] - 2.2 - dome), shade, 1.3)
        pen.polyline(canvas, _xy(x[inner], lo_out[inner] + 2.2 + dome), shade, 1.3)
