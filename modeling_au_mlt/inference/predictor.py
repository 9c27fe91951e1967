"""AU detection on real images and videos: faces found, AUs per frame, one CSV per input.

`Prediction(AUPredictor(model), OUT).run(inputs)` streams every input's frames through a `DataLoader` whose
worker decodes frames, finds faces and prepares crops (`face_stream.py`) while the main process runs the model on
batches of faces (`AUPredictor` runs PyTorch; `onnx_predictor.ONNXPredictor` runs an ONNX export instead).
Each input gives `OUT/<stem>.csv` with one row per face and frame (a row with `face_detected=0` where no face
was found); videos are smoothed per face over `smooth` frames before thresholding. A temporal model
(`temporal_layers > 0`) scores each tracked face of a video with context from its other frames (`tracks.py`);
photos and image folders are single frames. With `attention_maps` it also draws where each AU looks
(`attention_maps.py`) and, for videos, the AU probabilities over time.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoImageProcessor

from ..atomic_io import atomic_output, save_figure
from ..configuration_au_mlt import AUMLTConfig
from ..evaluation.metrics import binarize
from ..evaluation.tuning import smooth_probabilities
from ..modeling_au_mlt import AUMLTModel
from .attention_maps import attention_figure, patch_attention, timeline_figure
from .face_stream import FaceStream, FrameFaces, clocks, collate_frames, elapsed
from .faces import FaceBox, FaceDetector, IoUTracker
from .media import MediaError, MediaSource, open_media
from .tracks import TrackBuffer

DEFAULT_ATTENTION_EVERY = 125

logger = logging.getLogger(__name__)


class FramePredictor:
    """What `Prediction` reads from any predictor besides its scoring methods, taken from the model's config:
    `AUPredictor` (PyTorch) and `onnx_predictor.ONNXPredictor` (ONNX Runtime) share it."""

    def __init__(self, config: AUMLTConfig, processor, device: torch.device):
        self.device = device
        self.processor = processor
        self.image_size = config.vision_config.image_size
        self.grid_size = config.vision_config.image_size // config.vision_config.patch_size
        self.label_names = config.label_names
        self.thresholds = np.asarray(config.decision_thresholds())
        self.smoothing_window = config.smoothing_window
        self.temporal = config.temporal_layers > 0


class AUPredictor(FramePredictor):
    """A saved AU-MLT folder (or cached Hub id) ready for inference on face crops."""

    def __init__(self, model: str | Path, device: str | None = None):
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AUMLTModel.from_pretrained(model, dtype=torch.float32, use_safetensors=True).to(device).eval()
        super().__init__(self.model.config, AutoImageProcessor.from_pretrained(model), device)

    @torch.inference_mode()
    def probabilities(self, pixel_values: torch.Tensor) -> np.ndarray:
        """`(faces, labels)` sigmoid probabilities of face crops `(faces, 3, S, S)`."""
        return torch.sigmoid(self.model(pixel_values.to(self.device)).logits).float().cpu().numpy()

    @torch.inference_mode()
    def frame_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Label tokens `(faces, labels, hidden)` of face crops after the label decoder, on the CPU (a video's
        tracks keep them until they end)."""
        return self.model.frame_states(pixel_values.to(self.device)).float().cpu()

    @torch.inference_mode()
    def track_probabilities(self, states: torch.Tensor, frame_mask: torch.Tensor, causal: bool) -> np.ndarray:
        """`(frames, labels)` probabilities of one face track's `frame_states` (`frame_mask` False where the face
        was missed), with context from past frames only if `causal`, else as the model was trained."""
        logits = self.model.video_logits(states.to(self.device), frame_mask.to(self.device), causal=causal or None)
        return torch.sigmoid(logits).float().cpu().numpy()

    @torch.inference_mode()
    def attention(self, pixel_values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities `(faces, labels)` and last-layer AU attention maps `(faces, labels, g, g)`."""
        # SDPA returns no attention weights; the eager path does, and is only needed for these few frames.
        fast = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            output = self.model(pixel_values.to(self.device), output_attentions=True)
        finally:
            self.model.set_attn_implementation(fast)
        maps = patch_attention(output.cross_attentions, self.grid_size)
        return torch.sigmoid(output.logits).float().cpu().numpy(), maps


@dataclass
class InputResult:
    """Rows of one input in time order, and what went wrong with it."""

    source: MediaSource
    frames: list[int] = field(default_factory=list)
    timestamps: list[float | None] = field(default_factory=list)
    face_ids: list[int] = field(default_factory=list)  # -1: no face in that frame
    boxes: list[FaceBox | None] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)  # (labels,) rows, NaN without a face
    errors: list[str] = field(default_factory=list)
    frames_seen: int = 0
    tracks: TrackBuffer | None = None  # a temporal model's video: rows are NaN until their track is scored
    attention_frames: list[tuple[FrameFaces, int]] = field(default_factory=list)  # (frame, first row) to draw then

    def add_frame(self, frame: FrameFaces, face_ids: list[int], probabilities: np.ndarray, num_labels: int) -> None:
        """Record one frame: a row per face, or one `face_detected=0` row."""
        self.frames_seen += 1
        if not frame.boxes:
            face_ids, probabilities = [-1], np.full((1, num_labels), np.nan)
        for face_id, box, row in zip(face_ids, frame.boxes or [None], probabilities):
            self.frames.append(frame.index)
            self.timestamps.append(frame.timestamp)
            self.face_ids.append(face_id)
            self.boxes.append(box)
            self.probabilities.append(row)


def csv_header(label_names: Sequence[str]) -> list[str]:
    """Column names of the per-input CSV."""
    return ["frame", "timestamp", "face_id", "x", "y", "w", "h", "face_detected"] + [
        column for name in label_names for column in (f"{name}_prob", name)
    ]


def csv_rows(result: InputResult, probabilities: np.ndarray, thresholds: np.ndarray) -> Iterator[list]:
    """CSV rows of `result` with its (smoothed) `probabilities` `(rows, labels)` thresholded."""
    decisions = binarize(probabilities, thresholds)  # (rows, labels); rows without a face are not written
    rows = zip(result.frames, result.timestamps, result.face_ids, result.boxes)
    for row, (frame, timestamp, face_id, box) in enumerate(rows):
        head = [frame, "" if timestamp is None else f"{timestamp:.3f}"]
        if box is None:
            yield head + ["", "", "", "", "", 0] + [""] * (2 * len(thresholds))
            continue
        values = [v for p, d in zip(probabilities[row], decisions[row]) for v in (f"{p:.4f}", d)]
        yield head + [face_id, box.x, box.y, box.w, box.h, 1] + values


class Prediction:
    """One prediction run over several inputs; `run()` returns the number of inputs that failed.

    `causal`: each frame's output uses that frame and earlier ones only: a temporal model's tracks are scored
    with past context only, and smoothing (a centred mean) defaults to none. A frame model is causal already.
    `timeline`: draw each video's AU timeline (default: with `attention_maps`).
    """

    def __init__(
        self,
        predictor: FramePredictor,
        output_dir: str | Path,
        detect: bool = True,
        attention_maps: bool = False,
        attention_every: int = DEFAULT_ATTENTION_EVERY,
        batch_size: int = 32,
        smooth: int | None = None,
        num_workers: int = 1,
        progress: bool = True,
        causal: bool = False,
        timeline: bool | None = None,
    ):
        self.predictor = predictor
        self.output_dir = Path(output_dir)
        self.detector = FaceDetector() if detect else None
        self.attention_maps = attention_maps
        self.timeline = attention_maps if timeline is None else timeline
        self.attention_every = attention_every
        self.batch_size = batch_size
        self.smooth = (1 if causal else predictor.smoothing_window or 1) if smooth is None else smooth
        self.causal = causal
        if causal and predictor.temporal and not predictor.model.config.temporal_causal:
            logger.warning(
                "the model was trained with two-sided temporal context (temporal_causal=False); scored causally, "
                "each frame sees only past frames, which it was not trained for"
            )
        self.num_workers = num_workers
        self.progress = progress
        stages = ("decode+detect", "model", "attention", "writing")
        self.seconds = {stage: (0.0, 0.0) for stage in stages}  # (wall-clock, CPU) seconds
        self.failed: list[str] = []
        self.stats: dict[str, float] = {}

    def add_time(self, stage: str, seconds: tuple[float, float]) -> None:
        self.seconds[stage] = tuple(total + value for total, value in zip(self.seconds[stage], seconds))

    def report(self, message: str) -> None:
        """Count a failed input or frame and log why."""
        self.failed.append(message)
        logger.error("%s", message)

    def open_sources(self, inputs: Sequence[str | Path]) -> list[MediaSource]:
        """Checked inputs; bad ones (and a second input with an output name already taken) are reported."""
        sources, stems = [], set()
        for path in inputs:
            try:
                source = open_media(path)
            except MediaError as error:
                self.report(str(error))
                continue
            if source.stem in stems:
                self.report(f"{path}: skipped, its output name {source.stem}.csv is already used by another input")
                continue
            stems.add(source.stem)
            sources.append(source)
        return sources

    def run(self, inputs: Sequence[str | Path]) -> int:
        """Process every input, write its outputs, log a summary; number of failed inputs or frames."""
        threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
        if self.num_workers:
            # The loader's worker takes a core for decoding and detection, single-threaded: the forked worker
            # inherits this setting (changing it inside the worker deadlocks on OpenCV's copied thread pool).
            cv2.setNumThreads(1)
            if self.predictor.device.type == "cpu":
                # A model thread competing with the worker for its core slows every matrix product down
                # (threads wait on each other), so the model keeps the other cores.
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
                torch.set_num_threads(max(1, cores - self.num_workers))
        try:
            return self.process(inputs)
        finally:
            torch.set_num_threads(threads)
            cv2.setNumThreads(cv2_threads)

    def process(self, inputs: Sequence[str | Path]) -> int:
        """`run` with the threads set."""
        started = time.perf_counter()
        sources = self.open_sources(inputs)
        stream = FaceStream(sources, self.predictor.processor, self.predictor.image_size, self.detector)
        loader = DataLoader(
            stream, batch_size=self.batch_size, collate_fn=collate_frames, num_workers=self.num_workers
        )
        total = sum(source.num_frames for source in sources)
        bar = tqdm(total=total, unit="frame", disable=not self.progress, dynamic_ncols=True)
        results = [InputResult(source, tracks=self.track_buffer(source)) for source in sources]
        trackers = [IoUTracker() if source.kind == "video" else None for source in sources]
        done = 0
        for batch in loader:
            self.predict_batch(batch, results, trackers)
            bar.update(len(batch))
            while done < batch[-1].source:
                self.finish(results[done])
                done += 1
        bar.close()
        for result in results[done:]:
            self.finish(result)
        self.log_summary(results, time.perf_counter() - started)
        return len(self.failed)

    def track_buffer(self, source: MediaSource) -> TrackBuffer | None:
        """Where a temporal model keeps a video's face tracks until they end; `None`: frames scored alone."""
        if not (self.predictor.temporal and source.kind == "video"):
            return None
        return TrackBuffer(lambda states, mask: self.predictor.track_probabilities(states, mask, self.causal))

    def run_model(self, frames: list[FrameFaces], model: Callable[[torch.Tensor], Any]) -> dict[int, Any]:
        """`model`'s output on the faces of `frames` in one batch, split per frame and keyed by `id(frame)`."""
        if not frames:
            return {}
        started = clocks()
        outputs = model(torch.cat([frame.pixel_values for frame in frames]))
        self.add_time("model", elapsed(started))
        offsets = np.cumsum([0] + [len(frame.boxes) for frame in frames])
        return {id(frame): outputs[start:stop] for frame, start, stop in zip(frames, offsets, offsets[1:])}

    def score_tracks(self, result: InputResult, live: Collection[int]) -> None:
        """Score the tracks of `result` whose ids are not in `live` (model time)."""
        started = clocks()
        result.tracks.score_ended(live, result.probabilities)
        self.add_time("model", elapsed(started))

    def predict_batch(self, batch: list[FrameFaces], results: list[InputResult], trackers: list) -> None:
        """Run the model on every face of `batch` and record the rows (and attention figures); a temporal
        model's video rows get their probabilities when their track is scored."""
        for frame in batch:
            self.add_time("decode+detect", frame.seconds)
        faces = [frame for frame in batch if frame.error is None and frame.boxes]
        alone = [frame for frame in faces if results[frame.source].tracks is None]
        tracked = [frame for frame in faces if results[frame.source].tracks is not None]
        outputs = self.run_model(alone, self.predictor.probabilities)
        if tracked:  # only a temporal model's predictor has frame states
            outputs |= self.run_model(tracked, self.predictor.frame_states)
        num_labels = len(self.predictor.label_names)
        for frame in batch:
            result = results[frame.source]
            if frame.error is not None:
                result.errors.append(frame.error)
                self.report(frame.error)
                continue
            tracker = trackers[frame.source]
            face_ids = tracker.update(frame.boxes) if tracker is not None else list(range(len(frame.boxes)))
            output, first_row = outputs.get(id(frame), np.zeros((0, 0))), len(result.frames)
            if result.tracks is not None:
                result.tracks.add(frame.index, face_ids, first_row, output)
                output = np.full((len(face_ids), num_labels), np.nan)
            result.add_frame(frame, face_ids, output, num_labels)
            if result.tracks is not None:
                self.score_tracks(result, tracker.tracks.keys())
            if self.attention_maps and frame.boxes and frame.index % self.attention_every == 0:
                if result.tracks is None:
                    self.draw_attention(result.source, frame)
                else:
                    result.attention_frames.append((frame, first_row))

    def draw_attention(self, source: MediaSource, frame: FrameFaces, probabilities: np.ndarray | None = None) -> None:
        """`<stem>_attention.png` for an image, `<stem>_attention_<frame>.png` for a video or folder; titled
        with `probabilities` `(faces, labels)` if given, else with the frame's own."""
        started = clocks()
        alone, maps = self.predictor.attention(frame.pixel_values)
        probabilities = alone if probabilities is None else probabilities
        single = source.kind == "image"
        name = f"{source.stem}_attention.png" if single else f"{source.stem}_attention_{frame.index:06d}.png"
        title = source.path.name if single else f"{source.path.name} frame {frame.index}"
        figure = attention_figure(
            frame.crops, maps, probabilities, self.predictor.label_names, self.predictor.thresholds, title
        )
        save_figure(figure, self.output_dir / name)
        self.add_time("attention", elapsed(started))

    def finish(self, result: InputResult) -> None:
        """Smooth (videos), threshold and write `<stem>.csv`, and the timeline figure of a video."""
        if result.tracks is not None:
            self.score_tracks(result, ())
        for frame, first_row in result.attention_frames:  # a temporal model's: drawn with its tracks' scores
            rows = result.probabilities[first_row : first_row + len(frame.boxes)]
            self.draw_attention(result.source, frame, np.stack(rows))
        started = clocks()
        if result.frames_seen == 0:
            return
        if result.source.kind == "video" and result.frames_seen < result.source.num_frames:
            # Containers' frame counts are estimates, so a shortfall is a warning, not a failure.
            logger.warning(
                "%s: decoded %d of the %d frames its header announces (truncated or damaged video?)",
                result.source.path,
                result.frames_seen,
                result.source.num_frames,
            )
        probabilities = np.array(result.probabilities, dtype=np.float64).reshape(len(result.frames), -1)
        face_ids = np.asarray(result.face_ids)
        faces = face_ids >= 0  # rows without a face hold NaN and stay out of the averages
        if result.source.kind == "video" and faces.any():
            probabilities[faces] = smooth_probabilities(
                probabilities[faces], face_ids[faces], self.smooth, np.asarray(result.frames)[faces]
            )
        with atomic_output(self.output_dir / f"{result.source.stem}.csv") as temporary:
            with open(temporary, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(csv_header(self.predictor.label_names))
                writer.writerows(csv_rows(result, probabilities, self.predictor.thresholds))
        if self.timeline and result.source.kind == "video":
            timestamps = np.array([np.nan if t is None else t for t in result.timestamps], dtype=np.float64)
            figure = timeline_figure(
                np.asarray(result.frames),
                timestamps,
                face_ids,
                probabilities,
                self.predictor.label_names,
                self.predictor.thresholds,
                title=result.source.path.name,
            )
            save_figure(figure, self.output_dir / f"{result.source.stem}_timeline.png")
        self.add_time("writing", elapsed(started))

    def log_summary(self, results: list[InputResult], seconds: float) -> None:
        """Frames, faces, frames without a face, speed and time per stage, failures."""
        boxes = [box for result in results for box in result.boxes]
        self.stats = {
            "inputs": len(results),
            "frames": sum(result.frames_seen for result in results),
            "faces": sum(box is not None for box in boxes),
            "frames_without_face": sum(box is None for box in boxes),
            "seconds": seconds,
            "model_threads": torch.get_num_threads(),
            **{f"{stage}_seconds": wall for stage, (wall, _) in self.seconds.items()},
            **{f"{stage}_cpu_seconds": cpu for stage, (_, cpu) in self.seconds.items()},
        }
        stages = ", ".join(f"{stage} {wall:.1f} s" for stage, (wall, _) in self.seconds.items())
        logger.info(
            f"{self.stats['inputs']} input(s) processed, {self.stats['frames']} frames, {self.stats['faces']} faces, "
            f"{self.stats['frames_without_face']} frames without a face; {seconds:.1f} s, "
            f"{self.stats['frames'] / max(seconds, 1e-9):.1f} frames/s end to end ({stages}; decode+detect runs "
            f"in the loader's worker, beside the model); {len(self.failed)} failure(s); outputs in {self.output_dir}"
        )
