"""Inputs of inference: image files, folders of images and videos, read as RGB frames.

`open_media(path)` checks the input at once (exists, supported, decodable, not empty) and raises
`MediaError` naming the file and what was expected; iterating the returned `MediaSource` yields
`Frame`s. Videos are decoded frame by frame with `cv2.VideoCapture`, with each frame's timestamp. A
damaged image inside a folder becomes a `Frame` with `error` set, so the rest of the folder goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")


class MediaError(ValueError):
    """An input that cannot be used: the message names the file and what was expected."""


@dataclass
class Frame:
    """One RGB frame `(H, W, 3)` uint8; `index` counts from 0 in reading order, `timestamp` is in seconds
    (videos only). A frame that could not be decoded has `image=None` and `error` saying why."""

    index: int
    image: np.ndarray | None
    timestamp: float | None = None
    error: str | None = None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 pixels of an image file; `MediaError` if it cannot be read or decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise MediaError(f"{path}: cannot read the file ({error.strerror})") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise MediaError(f"{path}: not a decodable image (expected one of {', '.join(IMAGE_EXTENSIONS)})")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class MediaSource:
    """A checked input: `kind` is "image", "folder" or "video"; iterate it for its frames."""

    path: Path
    kind: str
    num_frames: int
    fps: float | None = None

    @property
    def stem(self) -> str:
        return self.path.stem if self.kind != "folder" else self.path.name

    def image_paths(self) -> list[Path]:
        """The image files of this input in reading order (none for a video)."""
        if self.kind == "image":
            return [self.path]
        if self.kind == "folder":
            return folder_images(self.path)
        return []

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "video":
            yield from video_frames(self.path)
            return
        for index, image_path in enumerate(self.image_paths()):
            try:
                yield Frame(index=index, image=read_image(image_path))
            except MediaError as error:
                yield Frame(index=index, image=None, error=str(error))


def folder_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (ABAW frames are zero-padded numbers)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def video_frames(path: Path) -> Iterator[Frame]:
    """Frames of a video in order, with timestamps from the container (or index / fps where the
    backend gives none); `MediaError` if not a single frame decodes."""
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        index, previous = 0, -1.0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            timestamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if timestamp <= previous and fps > 0:
                timestamp = index / fps
            previous = timestamp
            yield Frame(index=index, image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), timestamp=timestamp)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise MediaError(f"{path}: no frame could be decoded (empty or corrupt video)")


def probe_video(path: Path) -> MediaSource:
    """A video input after checking that it opens and that its first frame decodes."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"{path}: cannot open as a video (corrupt file or unsupported codec)")
        ok, _ = capture.read()
        if not ok:
            raise MediaError(f"{path}: the video holds no decodable frame (empty or corrupt)")
        num_frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        return MediaSource(path=path, kind="video", num_frames=num_frames, fps=capture.get(cv2.CAP_PROP_FPS) or None)
    finally:
        capture.release()


def open_media(path: str | Path) -> MediaSource:
    """A checked input for `path`: an image file, a folder of images, or a video (mp4/avi/mov/mkv).

    Raises:
        MediaError: missing path, unsupported extension, undecodable image, folder without images,
            video that does not open or holds no frame.
    """
    path = Path(path)
    if path.is_dir():
        images = folder_images(path)
        if not images:
            raise MediaError(f"{path}: the folder holds no image file (expected {', '.join(IMAGE_EXTENSIONS)})")
        read_image(images[0])
        return MediaSource(path=path, kind="folder", num_frames=len(images))
    if not path.is_file():
        raise MediaError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return probe_video(path)
    if suffix in IMAGE_EXTENSIONS:
        read_image(path)
        return MediaSource(path=path, kind="image", num_frames=1)
    raise MediaError(
        f"{path}: unsupported format {suffix or '(no extension)'}; expected an image "
        f"({', '.join(IMAGE_EXTENSIONS)}), a video ({', '.join(VIDEO_EXTENSIONS)}) or a folder of images"
    )
