"""Face detection, square face crops and face tracking for inference on real images and videos.

The detector is OpenCV's frontal-face Haar cascade, whose weights ship inside `opencv-python-headless`
4.x (`cv2.data.haarcascades`), so it runs offline. Crops are square around the detected box with a
margin and resized to the model's input size, like ABAW's cropped-aligned frames. `IoUTracker` keeps a
face's id from frame to frame by box overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# alt2 gives fewer false positives than the default cascade on the same faces (checked on MJPG-compressed
# frames of the test video, where the default cascade also fired on the background).
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"


@dataclass(frozen=True)
class FaceBox:
    """A face box in the input's pixels: top-left corner `(x, y)`, width `w`, height `h`."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: FaceBox) -> float:
        """Intersection over union of two boxes (0 when they do not overlap)."""
        inter_w = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        inter_h = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = inter_w * inter_h
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


def haar_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face cascade from the installed wheel; `RuntimeError` if it is missing."""
    cascade_path = Path(cv2.data.haarcascades) / HAAR_CASCADE
    cascade = cv2.CascadeClassifier(str(cascade_path))
    if cascade.empty():
        raise RuntimeError(
            f"{cascade_path}: OpenCV's Haar cascade could not be loaded; opencv-python-headless 4.x ships it "
            "(the 5.x wheels no longer do)"
        )
    return cascade


class FaceDetector:
    """Frontal faces in RGB images, largest first, with OpenCV's Haar cascade.

    Args:
        detect_size: frames are shrunk so that their longer side is at most this many pixels before
            detection (the cascade's cost grows with the pixel count; boxes are scaled back).
        min_face_fraction: smallest face side searched, as a fraction of the image's shorter side.
        scale_factor, min_neighbors: `cv2.CascadeClassifier.detectMultiScale` settings.
    """

    def __init__(
        self,
        detect_size: int = 480,
        min_face_fraction: float = 0.1,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ):
        self.cascade = haar_cascade()
        self.detect_size = detect_size
        self.min_face_fraction = min_face_fraction
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def __getstate__(self) -> dict:
        # A cascade does not pickle; DataLoader workers started by "spawn" load their own.
        return {**self.__dict__, "cascade": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, cascade=haar_cascade())

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Face boxes of an RGB uint8 image `(H, W, 3)` in its own pixels, largest first."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.detect_size / max(gray.shape))
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # Histogram equalisation makes the cascade less sensitive to exposure, as OpenCV's samples do.
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(self.min_face_fraction * min(gray.shape)))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        boxes = [FaceBox(*(int(round(v / scale)) for v in row)) for row in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda box: box.area, reverse=True)


def square_region(box: FaceBox, margin: float) -> tuple[int, int, int]:
    """Top-left corner and side `(x0, y0, side)` of the square centred on `box`, enlarged by `margin`
    (a fraction of the box's longer side on each side)."""
    side = int(round(max(box.w, box.h) * (1.0 + 2.0 * margin)))
    x0 = int(round(box.x + box.w / 2 - side / 2))
    y0 = int(round(box.y + box.h / 2 - side / 2))
    return x0, y0, side


def crop_face(image: np.ndarray, box: FaceBox, size: int, margin: float = 0.2) -> np.ndarray:
    """Square RGB crop `(size, size, 3)` around `box` with `margin`; parts outside the image are black,
    so the face stays centred and unstretched near the borders."""
    x0, y0, side = square_region(box, margin)
    height, width = image.shape[:2]
    padded = cv2.copyMakeBorder(
        image[max(0, y0) : y0 + side, max(0, x0) : x0 + side],
        top=max(0, -y0),
        bottom=max(0, y0 + side - height),
        left=max(0, -x0),
        right=max(0, x0 + side - width),
        borderType=cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(padded, (size, size), interpolation=interpolation)


class IoUTracker:
    """Face ids that persist across video frames: each new box takes the id of the live track it overlaps
    most (IoU at least `min_iou`, greedy, best pairs first); others open new ids. A track survives
    `max_missed` frames without a match, so a face keeps its id through short detection drop-outs."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 50):
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: dict[int, tuple[FaceBox, int]] = {}  # id -> (last box, frames since last match)
        self.next_id = 0

    def update(self, boxes: list[FaceBox]) -> list[int]:
        """Ids of `boxes` (same order) in the current frame; call once per frame, also with no boxes."""
        pairs = sorted(
            (
                (box.iou(last), index, track_id)
                for index, box in enumerate(boxes)
                for track_id, (last, _) in self.tracks.items()
            ),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, index, track_id in pairs:
            if overlap < self.min_iou:
                break
            if ids[index] is None and track_id not in taken:
                ids[index] = track_id
                taken.add(track_id)
        for index, track_id in enumerate(ids):
            if track_id is None:
                ids[index] = track_id = self.next_id
                self.next_id += 1
        self.tracks = {
            track_id: (last, missed + 1)
            for track_id, (last, missed) in self.tracks.items()
            if track_id not in ids and missed + 1 <= self.max_missed
        } | {track_id: (box, 0) for box, track_id in zip(boxes, ids)}
        return ids
