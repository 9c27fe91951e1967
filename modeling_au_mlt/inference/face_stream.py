"""The frames prediction reads: every input's frames in order, each with its faces found, cropped and preprocessed.

`FaceStream` is the `DataLoader` dataset of `predictor.Prediction`: its worker decodes frames, finds faces and
prepares the crops while the main process runs the model; `clocks`/`elapsed` time each stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset

from .faces import FaceBox, FaceDetector, crop_face
from .media import MediaError, MediaSource


@dataclass
class FrameFaces:
    """What the loader's worker prepares for one frame of input `source`."""

    source: int
    index: int
    timestamp: float | None
    boxes: list[FaceBox]
    crops: np.ndarray  # (faces, S, S, 3) uint8
    pixel_values: torch.Tensor  # (faces, 3, S, S), normalised by the model's image processor
    seconds: tuple[float, float]  # wall-clock and CPU seconds of decoding, detecting and preprocessing it
    error: str | None = None


class FaceStream(IterableDataset):
    """Frames of several inputs in order, each with its faces found, cropped and preprocessed.

    A frame that fails to decode comes through with `error` set instead of stopping the stream. With
    `detector=None` every frame is taken as an already-cropped face.
    """

    def __init__(
        self,
        sources: Sequence[MediaSource],
        processor,
        image_size: int,
        detector: FaceDetector | None,
        margin: float = 0.2,
    ):
        self.sources = sources
        self.processor = processor
        self.image_size = image_size
        self.detector = detector
        self.margin = margin

    def frame_faces(self, source: int, frame, started: tuple[float, float]) -> FrameFaces:
        """Faces of one decoded frame, largest first."""
        height, width = frame.image.shape[:2]
        if self.detector is None:
            boxes = [FaceBox(0, 0, width, height)]
            crops = [cv2.resize(frame.image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)]
        else:
            boxes = self.detector.detect(frame.image)
            crops = [crop_face(frame.image, box, self.image_size, self.margin) for box in boxes]
        crops = np.stack(crops) if crops else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        pixel_values = (
            self.processor(images=list(crops), return_tensors="pt")["pixel_values"]
            if len(crops)
            else torch.zeros(0, 3, self.image_size, self.image_size)
        )
        return FrameFaces(source, frame.index, frame.timestamp, boxes, crops, pixel_values, elapsed(started))

    def __iter__(self) -> Iterator[FrameFaces]:
        for source_index, source in enumerate(self.sources):
            try:
                started = clocks()
                for frame in source:
                    if frame.error is not None:
                        yield self.failed_frame(source_index, frame.index, frame.error)
                    else:
                        yield self.frame_faces(source_index, frame, started)
                    started = clocks()
            except MediaError as error:
                yield self.failed_frame(source_index, -1, str(error))
            except cv2.error as error:  # OpenCV failing on a decoded frame: that input stops, the others go on
                message = f"{source.path}: OpenCV failed while reading or detecting faces: {error.msg or error}"
                yield self.failed_frame(source_index, -1, message)

    def failed_frame(self, source: int, index: int, error: str) -> FrameFaces:
        """A frame (index -1: the rest of the input) that could not be read, carrying why."""
        empty = np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        return FrameFaces(source, index, None, [], empty, torch.zeros(0), (0.0, 0.0), error)


def clocks() -> tuple[float, float]:
    """Wall-clock time and this thread's CPU time (the CPU time is the cost of a stage even when other
    processes compete for the cores; with one model thread, torch runs its operators in this thread)."""
    return time.perf_counter(), time.thread_time()


def elapsed(started: tuple[float, float]) -> tuple[float, float]:
    """Wall-clock and CPU seconds since `clocks()` returned `started`."""
    now = clocks()
    return now[0] - started[0], now[1] - started[1]


def collate_frames(batch: list[FrameFaces]) -> list[FrameFaces]:
    """Keep frames as a list: their face counts differ; the main process concatenates the crops."""
    return batch
