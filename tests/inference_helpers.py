"""Shared test material for the inference tests: real face photos from registry packages, a video
written by the test (with the video benchmark's synthetic frames), tiny random AU-MLT models saved
like Hub-ready folders, and a model's own probabilities for the faces of a photo."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_config
from matplotlib import cbook
from transformers import AutoImageProcessor

from benchmarks.bench_video import synthetic_face_frames, write_video
from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.hub.folder import save_for_hub
from modeling_au_mlt.inference.faces import FaceBox, FaceDetector, crop_face

# Approximate face centres and widths, read off the photos by eye (not from the detector).
GRACE_HOPPER_FACE = {"centre": (260, 230), "width": (130, 320)}  # 512 x 600 photo
ASTRONAUT_FACE = {"centre": (225, 115), "width": (60, 150)}  # 512 x 512 photo
# Thresholds far from the untrained model's ~0.5 probabilities, so decisions are known: 1 below, 0 above.
# (`decoder_initializer="normal"` keeps the untrained head's logits near 0; Glorot spreads them.)
TINY_THRESHOLDS = [0.2, 0.8] * 6


def grace_hopper_rgb() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, RGB (600, 512, 3)."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut photo, RGB (512, 512, 3)."""
    from skimage import data

    return data.astronaut()


def model_probabilities(model_dir, image: np.ndarray) -> tuple[list[FaceBox], np.ndarray]:
    """Face boxes of an RGB photo (largest first) and the saved model's sigmoid probabilities `(faces, labels)`,
    computed without the demo's code (the package's face detector and crop, then the image processor and model as
    a user would call them): the truth the demo's outputs are checked against."""
    boxes = FaceDetector().detect(image)
    assert boxes, "the reference needs a photo with a face"
    model = AUMLTModel.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    crops = [crop_face(image, box, model.config.vision_config.image_size) for box in boxes]
    with torch.no_grad():
        logits = model(**processor(images=crops, return_tensors="pt")).logits
    return boxes, torch.sigmoid(logits).numpy()


def save_rgb(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def save_tiny_model(output_dir: Path, **config_kwargs) -> Path:
    """A random 12-AU AU-MLT with a 32-px, 4x4-patch ViT, saved with `save_for_hub`."""
    torch.manual_seed(0)
    save_for_hub(AUMLTModel(tiny_config(**config_kwargs)).eval(), output_dir)
    return output_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(
        tmp_path_factory.mktemp("tiny_model"), thresholds=TINY_THRESHOLDS, decoder_initializer="normal"
    )


@pytest.fixture(scope="session")
def spread_model_dir(tmp_path_factory) -> Path:
    """The tiny model with its default (Glorot) decoder initialisation. `tiny_model_dir`'s probabilities all sit
    within 0.001 of each other near 0.5 whatever the face; these spread over 0.1-0.9 and change with the face (by
    up to ~0.3 between two photos): for tests that must tell faces or photos apart by their scores."""
    return save_tiny_model(tmp_path_factory.mktemp("spread_model"), thresholds=TINY_THRESHOLDS)


@pytest.fixture(scope="session")
def tiny_temporal_model_dir(tmp_path_factory) -> Path:
    """The tiny model with one temporal layer over 4-frame windows, its temporal weights drawn at random: a new
    temporal layer is the identity (zero output maps), which would hide a frame scored without its context."""
    torch.manual_seed(0)
    config = tiny_config(
        thresholds=TINY_THRESHOLDS, decoder_initializer="normal", temporal_layers=1, temporal_window=4
    )
    model = AUMLTModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("temporal_"):
                parameter.normal_(std=0.3)
    output_dir = tmp_path_factory.mktemp("tiny_temporal_model")
    save_for_hub(model, output_dir)
    return output_dir


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """20 frames at 25 fps (320 x 240); frames 8-11 hold no face."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", synthetic_face_frames(20, blank=range(8, 12)))
