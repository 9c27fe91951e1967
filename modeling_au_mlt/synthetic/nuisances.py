"""Per-frame nuisances for the synthetic ABAW videos: brief events that make a frame hard to read alone while
its neighbours stay clear, so that temporal models have something to gain.

Each type comes in events, runs of consecutive frames, and covers a set share of the frames (`NuisanceRates`,
its `rate`). The labels are untouched: they stay the true AU state, so a frame whose mouth is hidden still
says whether the lips are parted. Strengths are drawn once per event; lengths in units of a 112 px face.

- `occlusion` (rate 4 %, 2-6 frames, mean 4): an ellipse (a hand) or a bar held over the mouth, over one eye,
  or across both eyes and brows, in a random colour. Unlike the renderer's border occluders it is meant to
  hide AU regions, wholly or in part. It follows the face's pose and replaces a border occluder of the frame.
- `motion_blur` (rate 4 %, 1-3 frames, mean 2): a line kernel 5-12 units long (at least 3 px) at a random
  angle, applied to the rendered frame (so it also smooths the frame's sensor noise).
- `lighting_flicker` (rate 3 %, 1-3 frames, mean 2): the frame's gain times 0.35-0.6 (darker) or 1.5-2.0
  (brighter, bright skin saturates), either with probability 1/2.
- `head_turn` (rate 4 %, 3-7 frames, mean 5): an in-plane rotation about the face centre, added to the usual
  one (within +-5 degrees), peaking at 15-30 degrees to either side and ramping in and out as
  `(1 + sin(pi k / (L + 1))) / 2` of the peak over the event's frames k = 1..L: more than half the peak, so
  every frame adds more than 7.5 degrees. It is a change of `FrameConditions.angle`, so `pose_matrix` (and the
  affines of regions.json) stay exact on those frames.
- `heavy_jpeg` (rate 4 %, 1-5 frames, mean 3): JPEG quality 5-15 instead of the usual 75-95.

Types are drawn independently and may overlap; events of one type never do. About 17 % of frames carry at
least one nuisance (1 - 0.96^4 * 0.97). Per type, event lengths are uniform in their range and alternate
with gaps of geometric length whose mean, `mean length * (1 - rate) / rate`, makes the expected share of
frames equal to the rate (the first event follows a gap too, so a video's first frames are a little less
often affected). Frames are 0-based here; callers that write files number them from 1.

Nuisance frames break the promise of regions.json that an AU changes no pixel outside its region (blur
spreads it, an occluder hides it); the affines stay exact.
"""

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import (
    CANONICAL_SIZE,
    FIXED_POINT_BITS,
    FrameConditions,
    Identity,
    Occluder,
    OccluderShape,
    fixed_point,
    pose_matrix,
)

NUISANCE_TYPES = ("occlusion", "motion_blur", "lighting_flicker", "head_turn", "heavy_jpeg")
EVENT_LENGTHS = {
    "occlusion": (2, 6),
    "motion_blur": (1, 3),
    "lighting_flicker": (1, 3),
    "head_turn": (3, 7),
    "heavy_jpeg": (1, 5),
}  # inclusive frame ranges, drawn uniformly
_OCCLUDED_PARTS = ("mouth", "eye", "eyes_and_brows")


@dataclass(frozen=True)
class NuisanceRates:
    """Share of frames each nuisance type covers, in [0, 1); 0 turns a type off."""

    occlusion: float = 0.04
    motion_blur: float = 0.04
    lighting_flicker: float = 0.03
    head_turn: float = 0.04
    heavy_jpeg: float = 0.04

    def __post_init__(self) -> None:
        if not all(0 <= rate < 1 for rate in self.as_dict().values()):
            raise ValueError(f"nuisance rates must lie in [0, 1); got {self.as_dict()}")

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Occlusion:
    """An object over the face, placed in canonical 112-unit face coordinates (it moves with the pose)."""

    occluder: Occluder


@dataclass(frozen=True)
class MotionBlur:
    """A line kernel of `length` 112-px units at `angle` degrees."""

    length: float
    angle: float


@dataclass(frozen=True)
class LightingFlicker:
    """A factor on the frame's gain."""

    gain: float


@dataclass(frozen=True)
class HeadTurn:
    """The extra rotation (degrees, signed) at the event's peak."""

    peak_angle: float


@dataclass(frozen=True)
class HeavyJpeg:
    """The JPEG quality of the frame."""

    quality: int


Effect = Occlusion | MotionBlur | LightingFlicker | HeadTurn | HeavyJpeg


@dataclass(frozen=True)
class NuisanceEvent:
    """One nuisance of type `kind` over the 0-based frames `start` .. `start + length - 1`."""

    kind: str
    start: int
    length: int
    effect: Effect

    def covers(self, frame: int) -> bool:
        return self.start <= frame < self.start + self.length

    def envelope(self, frame: int) -> float:
        """The share of its peak the event reaches at `frame`: `(1 + sin(pi k / (L + 1))) / 2` for its k-th
        frame of L, so it ramps in and out and stays above 1/2."""
        return (1 + math.sin(math.pi * (frame - self.start + 1) / (self.length + 1))) / 2


def sample_events(
    rng: np.random.Generator, num_frames: int, identity: Identity, rates: NuisanceRates | None = None
) -> list[NuisanceEvent]:
    """A video's nuisance events, type by type in `NUISANCE_TYPES` order, at `rates` (default: the documented
    ones); `identity` places the occlusions."""
    rates, events = NuisanceRates() if rates is None else rates, []
    for kind in NUISANCE_TYPES:
        rate = getattr(rates, kind)
        if rate == 0:
            continue
        low, high = EVENT_LENGTHS[kind]
        mean_gap = (low + high) / 2 * (1 - rate) / rate
        start = _gap(rng, mean_gap)
        while start < num_frames:
            length = int(rng.integers(low, high + 1))
            effect = _EFFECTS[kind](rng, identity)
            events.append(NuisanceEvent(kind, start, min(length, num_frames - start), effect))
            start += length + _gap(rng, mean_gap)
    return events


def active_events(events: list[NuisanceEvent], frame: int) -> list[NuisanceEvent]:
    """The events covering the 0-based `frame`, in `NUISANCE_TYPES` order."""
    return sorted((event for event in events if event.covers(frame)), key=lambda e: NUISANCE_TYPES.index(e.kind))


def nuisance_conditions(
    events: list[NuisanceEvent], frame: int, conditions: FrameConditions, identity: Identity, image_size: int
) -> FrameConditions:
    """`conditions` of the 0-based `frame` with the pose, occluder, gain and JPEG quality the active `events`
    set (`conditions` itself when none does). The head turn comes first: an occlusion follows the turned face."""
    for kind in ("head_turn", "occlusion", "lighting_flicker", "heavy_jpeg"):
        for event in events:
            if event.kind == kind and event.covers(frame):
                conditions = _apply_to_conditions(event, frame, conditions, identity, image_size)
    return conditions


def nuisance_image(events: list[NuisanceEvent], frame: int, image: np.ndarray) -> np.ndarray:
    """The rendered (H, W, 3) uint8 `image` of the 0-based `frame` with the active motion blur, if any."""
    for event in events:
        if event.kind == "motion_blur" and event.covers(frame):
            image = cv2.filter2D(image, -1, blur_kernel(event.effect, image.shape[0]), borderType=cv2.BORDER_REFLECT)
    return image


def blur_kernel(blur: MotionBlur, image_size: int) -> np.ndarray:
    """(k, k) float32 kernel summing to 1: an anti-aliased line of the blur's length in pixels (at least 3)."""
    length = max(3.0, blur.length * image_size / CANONICAL_SIZE)
    size = int(math.ceil(length)) | 1
    half = (length - 1) / 2 * np.array([math.cos(math.radians(blur.angle)), math.sin(math.radians(blur.angle))])
    start, end = fixed_point(size // 2 - half).tolist(), fixed_point(size // 2 + half).tolist()
    canvas = np.zeros((size, size), np.uint8)
    cv2.line(canvas, tuple(start), tuple(end), 255, 1, cv2.LINE_AA, FIXED_POINT_BITS)
    kernel = canvas.astype(np.float32)
    return kernel / kernel.sum()


def nuisance_document(rates: NuisanceRates, videos: dict[str, dict[str, list[str]]]) -> dict:
    """The content of nuisances.json: per video, its 1-based frames with at least one nuisance and their types."""
    return {"format": "au-nuisances/1", "rates": rates.as_dict(), "types": list(NUISANCE_TYPES), "videos": videos}


def nuisance_counts(frames: list[dict[str, list[str]]]) -> dict[str, int]:
    """How many frames carry any nuisance (`any`) and each type, over videos given as {frame: types}."""
    lists = [types for video in frames for types in video.values()]
    return {"any": len(lists)} | {kind: sum(kind in types for types in lists) for kind in NUISANCE_TYPES}


def _apply_to_conditions(
    event: NuisanceEvent, frame: int, conditions: FrameConditions, identity: Identity, image_size: int
) -> FrameConditions:
    """`conditions` changed by one event that covers `frame` (any type but motion blur)."""
    effect = event.effect
    if isinstance(effect, HeadTurn):
        return dataclasses.replace(conditions, angle=conditions.angle + effect.peak_angle * event.envelope(frame))
    if isinstance(effect, Occlusion):
        return dataclasses.replace(
            conditions, occluder=_posed_occluder(effect.occluder, conditions, identity, image_size)
        )
    if isinstance(effect, LightingFlicker):
        return dataclasses.replace(conditions, gain=conditions.gain * effect.gain)
    return dataclasses.replace(conditions, quality=effect.quality)


def _posed_occluder(occluder: Occluder, conditions: FrameConditions, identity: Identity, image_size: int) -> Occluder:
    """`occluder` moved from canonical face coordinates into the frame's (both in 112-px units)."""
    scale = image_size / CANONICAL_SIZE
    x, y = pose_matrix(identity, conditions, image_size) @ np.array([occluder.x * scale, occluder.y * scale, 1.0])
    # OpenCV's pose angle turns the face counter-clockwise on screen; shape angles turn clockwise.
    return dataclasses.replace(
        occluder,
        x=float(x / scale),
        y=float(y / scale),
        size=occluder.size * conditions.scale,
        angle=occluder.angle - conditions.angle,
    )


def _occlusion(rng: np.random.Generator, identity: Identity) -> Occlusion:
    """An ellipse or bar over the mouth, one eye, or both eyes and brows; sizes as `Occluder.size`."""
    face, shape = identity, OccluderShape(int(rng.integers(len(OccluderShape))))
    part = _OCCLUDED_PARTS[rng.integers(len(_OCCLUDED_PARTS))]
    if part == "mouth":
        x, y = face.center_x, face.mouth_y
        size = rng.uniform(15.0, 20.0) if shape == OccluderShape.ELLIPSE else rng.uniform(14.0, 18.0)
    elif part == "eye":
        x, y = face.center_x + rng.choice((-1, 1)) * face.eye_offset, face.eye_y
        size = rng.uniform(11.0, 14.0) if shape == OccluderShape.ELLIPSE else rng.uniform(12.0, 15.0)
    else:
        x, y = face.center_x, (face.brow_y + face.eye_y) / 2
        size = rng.uniform(28.0, 32.0) if shape == OccluderShape.ELLIPSE else rng.uniform(24.0, 28.0)
    return Occlusion(
        Occluder(
            shape=shape,
            x=float(x + rng.uniform(-2, 2)),
            y=float(y + rng.uniform(-2, 2)),
            size=float(size),
            angle=float(rng.uniform(-20, 20)),
            color=tuple(rng.integers(30, 230, 3).tolist()),
        )
    )


def _motion_blur(rng: np.random.Generator, identity: Identity) -> MotionBlur:
    return MotionBlur(length=float(rng.uniform(5.0, 12.0)), angle=float(rng.uniform(0, 180)))


def _lighting_flicker(rng: np.random.Generator, identity: Identity) -> LightingFlicker:
    darker = rng.random() < 0.5
    return LightingFlicker(gain=float(rng.uniform(0.35, 0.6) if darker else rng.uniform(1.5, 2.0)))


def _head_turn(rng: np.random.Generator, identity: Identity) -> HeadTurn:
    return HeadTurn(peak_angle=float(rng.choice((-1, 1)) * rng.uniform(15.0, 30.0)))


def _heavy_jpeg(rng: np.random.Generator, identity: Identity) -> HeavyJpeg:
    return HeavyJpeg(quality=int(rng.integers(5, 16)))


_EFFECTS = {
    "occlusion": _occlusion,
    "motion_blur": _motion_blur,
    "lighting_flicker": _lighting_flicker,
    "head_turn": _head_turn,
    "heavy_jpeg": _heavy_jpeg,
}


def _gap(rng: np.random.Generator, mean: float) -> int:
    """A geometric number of frames >= 0 with the given mean."""
    return int(rng.geometric(1 / (mean + 1))) - 1
