"""AUs of the faces in one photo, and of every frame of a video, as an interactive demo shows them.

`PhotoAnalyser(AUPredictor(model)).outputs(image, face)` finds the faces of an RGB photo (largest first, with
the same detection, crop and preprocessing as `predict.py`, `face_stream.FaceStream`), runs the model once
with attention on all of them and returns, for the chosen face: `{AU: probability}`, the photo with numbered
face boxes, a table of probabilities against the decision thresholds, one attention overlay per AU with its
caption, and a message (which also explains a photo without a face). `video_outputs` runs `Prediction` on a
video for its CSV and AU timeline. `example_images` writes the demo's example photos once into a cache folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook, colormaps

from ..atomic_io import atomic_output
from ..evaluation.metrics import binarize
from .attention_maps import overlay_map
from .face_stream import FaceStream, clocks
from .faces import FaceBox, FaceDetector
from .media import Frame
from .predictor import AUPredictor, Prediction

NO_FACE_MESSAGE = (
    "**No face found in this photo.** The detector looks for frontal faces (OpenCV's Haar cascade): try a "
    "photo where a face looks at the camera, well lit and at least a tenth of the picture's height."
)
NO_PHOTO_MESSAGE = "Upload a photo or take a webcam snapshot first."
OVERLAY_SIZE = 192  # overlays are drawn at least this large: the model's own crops may be 32 or 64 px
OVERLAY_ALPHA = 0.45  # as in `attention_figure`'s panels
CHOSEN_COLOUR = (255, 64, 0)
OTHER_COLOUR = (0, 200, 255)
DEFAULT_EXAMPLES_DIR = Path.home() / ".cache" / "au_mlt" / "demo_examples"
# A synthetic face the main job's model reads clearly: identity seed 1 smiling with parted lips.
SYNTHETIC_SEED, SYNTHETIC_AUS = 1, ("AU6", "AU12", "AU25")


@dataclass
class PhotoAnalysis:
    """The faces of one RGB photo `(H, W, 3)`, largest first, and the model's outputs on each."""

    image: np.ndarray
    boxes: list[FaceBox]
    crops: np.ndarray  # (faces, S, S, 3) uint8
    probabilities: np.ndarray  # (faces, labels)
    maps: np.ndarray  # (faces, labels, g, g) last-layer attention over the patch grid


@dataclass
class PhotoOutputs:
    """What a demo shows for one face of a photo; every field but `message` is `None` where there is
    nothing to show (no photo, no face, a face number out of range)."""

    confidences: dict[str, float] | None  # {AU: probability}, as `gr.Label` takes it
    boxed: np.ndarray | None  # the photo with numbered face boxes, the chosen one highlighted
    table: list[list] | None  # rows of `TABLE_HEADERS`
    overlays: list[tuple[np.ndarray, str]] | None  # (overlay image, caption) per AU
    message: str

    def as_tuple(self) -> tuple:
        return self.confidences, self.boxed, self.table, self.overlays, self.message


TABLE_HEADERS = ["AU", "probability", "threshold", "present"]


class PhotoAnalyser:
    """Faces, AU probabilities and attention maps of photos, with `predictor`'s model."""

    def __init__(self, predictor: AUPredictor, detector: FaceDetector | None = None, margin: float = 0.2):
        self.predictor = predictor
        self.stream = FaceStream([], predictor.processor, predictor.image_size, detector or FaceDetector(), margin)

    def analyse(self, image: np.ndarray) -> PhotoAnalysis:
        """Faces of an RGB uint8 photo `(H, W, 3)` and the model's probabilities and attention on each."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3); got {image.dtype} {image.shape}")
        faces = self.stream.frame_faces(0, Frame(0, image), clocks())
        labels, grid = len(self.predictor.label_names), self.predictor.grid_size
        if not faces.boxes:
            scores = np.zeros((0, labels)), np.zeros((0, labels, grid, grid))
        else:
            scores = self.predictor.attention(faces.pixel_values)
        return PhotoAnalysis(image, faces.boxes, faces.crops, *scores)

    def outputs(self, image: np.ndarray | None, face: float | int | None = 0) -> PhotoOutputs:
        """Everything shown for face number `face` (0 = the largest) of `image`, or why nothing is."""
        if image is None:
            return PhotoOutputs(None, None, None, None, NO_PHOTO_MESSAGE)
        analysis = self.analyse(image)
        if not analysis.boxes:
            return PhotoOutputs(None, image, None, None, NO_FACE_MESSAGE)
        chosen = face_number(face, len(analysis.boxes))
        if isinstance(chosen, str):
            return PhotoOutputs(None, boxed_photo(image, analysis.boxes, None), None, None, chosen)
        return PhotoOutputs(
            self.confidences(analysis, chosen),
            boxed_photo(image, analysis.boxes, chosen),
            self.table(analysis, chosen),
            self.overlays(analysis, chosen),
            self.summary(analysis, chosen),
        )

    def confidences(self, analysis: PhotoAnalysis, face: int) -> dict[str, float]:
        """`{AU: probability}` of one face."""
        return {name: float(p) for name, p in zip(self.predictor.label_names, analysis.probabilities[face])}

    def per_au(self, analysis: PhotoAnalysis, face: int) -> list[tuple[str, float, float, bool]]:
        """Per AU of one face: name, probability, decision threshold, whether it is decided present."""
        probabilities, thresholds = analysis.probabilities[face], self.predictor.thresholds
        present = binarize(probabilities, thresholds).astype(bool)
        return [
            (name, float(p), float(t), bool(on))
            for name, p, t, on in zip(self.predictor.label_names, probabilities, thresholds, present)
        ]

    def table(self, analysis: PhotoAnalysis, face: int) -> list[list]:
        """One row per AU: name, probability and threshold (3 decimals), and whether it is decided present."""
        return [[name, round(p, 3), round(t, 3), on] for name, p, t, on in self.per_au(analysis, face)]

    def overlays(self, analysis: PhotoAnalysis, face: int) -> list[tuple[np.ndarray, str]]:
        """Per AU, the face crop with that AU's attention map over it, captioned like
        "AU12 0.87 (threshold 0.41) present"."""
        return [
            (attention_overlay(analysis.crops[face], attention), caption(*row))
            for attention, row in zip(analysis.maps[face], self.per_au(analysis, face))
        ]

    def summary(self, analysis: PhotoAnalysis, face: int) -> str:
        """Markdown: how many faces, which one is shown, which AUs it shows."""
        present = [name for name, _, _, on in self.per_au(analysis, face) if on]
        count = len(analysis.boxes)
        faces = f"{count} face{'s' if count > 1 else ''} found (numbered largest first)"
        shown = ", ".join(present) if present else "none"
        return f"{faces}; showing face {face}. AUs present (probability at or above threshold): **{shown}**."


def face_number(face: float | int | None, count: int) -> int | str:
    """`face` as an index into `count` faces, or a message saying why it is not one."""
    chosen = 0 if face is None else face
    if chosen != int(chosen) or not 0 <= chosen < count:
        return (
            f"Face {face} was asked for; this photo has {count} face(s): choose a whole number from 0 to {count - 1}."
        )
    return int(chosen)


def caption(name: str, probability: float, threshold: float, present: bool) -> str:
    """Like "AU12 0.87 (threshold 0.41) present" (or "absent")."""
    return f"{name} {probability:.2f} (threshold {threshold:.2f}) {'present' if present else 'absent'}"


def attention_overlay(crop: np.ndarray, attention: np.ndarray) -> np.ndarray:
    """RGB uint8 face crop (upscaled to at least `OVERLAY_SIZE`) blended with a jet-coloured attention map
    scaled to [0, 1], as `attention_figure` draws each panel."""
    size = max(OVERLAY_SIZE, crop.shape[0])
    face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    heat = colormaps["jet"](overlay_map(attention, size))[..., :3] * 255.0
    return np.clip((1 - OVERLAY_ALPHA) * face + OVERLAY_ALPHA * heat, 0, 255).astype(np.uint8)


def boxed_photo(image: np.ndarray, boxes: list[FaceBox], chosen: int | None) -> np.ndarray:
    """A copy of `image` with each face box drawn and numbered; the `chosen` face in its own colour."""
    boxed = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 300))
    for number, box in enumerate(boxes):
        colour = CHOSEN_COLOUR if number == chosen else OTHER_COLOUR
        cv2.rectangle(boxed, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, thickness)
        scale = thickness / 2
        (width, height), _ = cv2.getTextSize(str(number), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(box.y - height - 2 * thickness, 0)
        cv2.rectangle(boxed, (box.x, top), (box.x + width + 2 * thickness, top + height + 2 * thickness), colour, -1)
        origin = (box.x + thickness, top + height + thickness)
        cv2.putText(boxed, str(number), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness)
    return boxed


def video_outputs(predictor: AUPredictor, video: str | Path | None) -> tuple[str | None, str | None, str]:
    """`predict.py`'s per-frame CSV and AU timeline of `video` (paths in a new temporary folder), and a
    message: how many frames and faces, or what went wrong."""
    if video is None:
        return None, None, "Upload a video first."
    output_dir = Path(tempfile.mkdtemp(prefix="au_mlt_video_"))
    # No loader worker: forking inside a web server's thread is unsafe, and one video needs no pipelining.
    prediction = Prediction(predictor, output_dir, timeline=True, num_workers=0, progress=False)
    prediction.run([video])
    stem = Path(video).stem
    csv, timeline = output_dir / f"{stem}.csv", output_dir / f"{stem}_timeline.png"
    stats = prediction.stats
    message = (
        f"{stats['frames']} frames, {stats['faces']} face rows, {stats['frames_without_face']} frames without a "
        "face. The CSV has one row per face and frame, with the columns of `scripts/predict.py`."
    )
    if prediction.failed:  # a damaged frame stops the video there; the frames before it are still written
        message = "**Not every frame could be processed:** " + "; ".join(prediction.failed) + "\n\n" + message
    return (str(csv) if csv.exists() else None), (str(timeline) if timeline.exists() else None), message


def example_images(
    cache_dir: str | Path = DEFAULT_EXAMPLES_DIR, names: Collection[str] | None = None
) -> dict[str, Path]:
    """The demo's example photos by name, written once into `cache_dir` (each file atomically): real photos
    shipped by installed packages (matplotlib's Grace Hopper; scikit-image's astronaut when it is installed),
    a synthetic face with visible AUs, and a picture without a face; `names` (file names): only those."""
    cache_dir = Path(cache_dir)
    makers = {"grace_hopper.png": grace_hopper, "synthetic_face.png": synthetic_face, "no_face.png": no_face}
    try:
        from skimage import data

        makers["astronaut.png"] = data.astronaut
    except ImportError:  # scikit-image is a test dependency only; the demo works without this example
        pass
    if names is not None and set(names) - set(makers):
        raise ValueError(f"unknown example images {sorted(set(names) - set(makers))}; known: {sorted(makers)}")
    examples = {}
    for name, make in makers.items():
        if names is not None and name not in names:
            continue
        path = cache_dir / name
        if not path.exists():
            with atomic_output(path) as temporary:
                temporary.write_bytes(cv2.imencode(".png", cv2.cvtColor(make(), cv2.COLOR_RGB2BGR))[1].tobytes())
        examples[Path(name).stem] = path
    return examples


def grace_hopper() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, RGB `(600, 512, 3)`."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def synthetic_face(size: int = 224) -> np.ndarray:
    """A frontal synthetic face (`modeling_au_mlt.synthetic`) showing `SYNTHETIC_AUS` at full intensity."""
    from ..configuration_au_mlt import ABAW_AUS
    from ..synthetic.faces import FaceRenderer
    from ..synthetic.geometry import sample_identity

    intensities = np.isin(ABAW_AUS, SYNTHETIC_AUS).astype(np.float64)
    return FaceRenderer(sample_identity(np.random.default_rng(SYNTHETIC_SEED)), size).canonical(intensities)


def no_face(size: int = 320) -> np.ndarray:
    """A colour gradient with a few discs: a picture in which no face can be found."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), axis=-1)
    image = np.ascontiguousarray(image.astype(np.uint8))
    for centre, radius in (((80, 90), 40), ((230, 150), 60), ((150, 260), 30)):
        cv2.circle(image, centre, radius, (250, 250, 250), -1, cv2.LINE_AA)
    return image
