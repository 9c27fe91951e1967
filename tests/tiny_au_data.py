"""Tiny learnable AU datasets and models for the training tests (built in the tests, nothing downloaded).

Each AU owns one quadrant of a 32 px image: a bright square there means the AU is present. Some label
entries are -1 (not annotated). Rows carry `video_id` and `frame` like converted ABAW data.
"""

import numpy as np
from datasets import Dataset, DatasetDict
from PIL import Image

from modeling_au_mlt.data.conversion import describe, features_for

AU_NAMES = ["AU1", "AU2", "AU4"]
QUADRANTS = [(0, 0), (0, 16), (16, 0)]  # (row, column) of each AU's square


def face_image(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A noisy gray image with a bright 12 px square in the quadrant of every present AU."""
    pixels = rng.integers(40, 90, size=(size, size, 3), dtype=np.uint8)
    for present, (row, column) in zip(labels, QUADRANTS):
        if present == 1:
            pixels[row + 2 : row + 14, column + 2 : column + 14] = 220
    return Image.fromarray(pixels)


def tiny_split(num_videos: int, frames: int, seed: int, split: str, unannotated: float = 0.05) -> Dataset:
    """`num_videos` x `frames` rows with random labels, a fraction `unannotated` of entries set to -1."""
    rng = np.random.default_rng(seed)
    rows = {"image": [], "labels": [], "video_id": [], "frame": []}
    for video in range(num_videos):
        for frame in range(1, frames + 1):
            labels = (rng.random(len(AU_NAMES)) < 0.4).astype(np.float32)
            rows["image"].append(face_image(labels, rng))
            labels[rng.random(len(AU_NAMES)) < unannotated] = -1.0
            rows["labels"].append(labels.tolist())
            rows["video_id"].append(f"{split}{video}")
            rows["frame"].append(frame)
    dataset = Dataset.from_dict(rows, features=features_for(AU_NAMES), split=split)
    dataset.info.description = describe(AU_NAMES)
    return dataset


def write_tiny_dataset(
    path, train_videos: int = 4, val_videos: int = 2, frames: int = 16, test_videos: int = 0
) -> str:
    """Save a tiny DatasetDict (train/validation, and a labelled test split when `test_videos`) like the
    converters write; returns its folder."""
    splits = {
        "train": tiny_split(train_videos, frames, 0, "train"),
        "validation": tiny_split(val_videos, frames, 1, "validation"),
    }
    if test_videos:
        splits["test"] = tiny_split(test_videos, frames, 2, "test")
    DatasetDict(splits).save_to_disk(str(path))
    return str(path)
