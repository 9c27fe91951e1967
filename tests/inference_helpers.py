"""Shared test material for the inference tests: real face photos from registry packages, a video
written by the test, and a tiny random AU-MLT model saved like a Hub-ready folder."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook

from modeling_au_mlt import AUMLTConfig
from modeling_au_mlt.hub import save_for_hub
from modeling_au_mlt.modeling_au_mlt import AUMLTModel

# Approximate face centres and widths, read off the photos by eye (not from the detector).
GRACE_HOPPER_FACE = {"centre": (260, 230), "width": (130, 320)}  # 512 x 600 photo
ASTRONAUT_FACE = {"centre": (225, 115), "width": (60, 150)}  # 512 x 512 photo
TINY_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
# Thresholds far from the untrained model's ~0.5 probabilities, so decisions are known: 1 below, 0 above.
TINY_THRESHOLDS = [0.2, 0.8] * 6


def grace_hopper_rgb() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, RGB (600, 512, 3)."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut photo, RGB (512, 512, 3)."""
    from skimage import data

    return data.astronaut()


def save_rgb(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def face_video_frames(num_frames: int, blank: range, size=(480, 640)) -> list[np.ndarray]:
    """RGB frames: Grace Hopper's portrait drifting right by 2 px a frame, grey frames at `blank`."""
    portrait = cv2.resize(grace_hopper_rgb(), (256, 300))
    frames = []
    for index in range(num_frames):
        frame = np.full((*size, 3), 90, np.uint8)
        if index not in blank:
            x = 60 + 2 * index
            frame[40:340, x : x + 256] = portrait
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """An MJPG AVI of RGB `frames`."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def save_tiny_model(output_dir: Path, **config_kwargs) -> Path:
    """A random 12-AU AU-MLT with a 32-px, 4x4-patch ViT, saved with `save_for_hub`."""
    torch.manual_seed(0)
    config = AUMLTConfig(vision_config=TINY_VISION, decoder_attention_heads=4, **config_kwargs)
    save_for_hub(AUMLTModel(config).eval(), output_dir)
    return output_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"), thresholds=TINY_THRESHOLDS)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """30 frames at 25 fps; frames 10-14 hold no face."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", face_video_frames(30, blank=range(10, 15)))
