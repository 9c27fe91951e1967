"""On-the-fly image augmentation and batching for AU-MLT training (`datasets.Dataset.with_transform`).

Training images get a random zoom/crop, a small rotation and a horizontal flip (one PIL affine warp), a
colour jitter (brightness, contrast, saturation), then the image processor's rescaling and normalisation;
optional label smoothing (in the transform) and mixup (in the collator, which sees whole batches).
Evaluation images get the image processor alone, without augmentation.

Every random draw comes from a generator seeded by (seed, epoch, sample key), never from a global generator:
a run resumed from a checkpoint then sees exactly the augmentations of an uninterrupted run, whatever the
DataLoader prefetches or which worker process runs the transform. Horizontal flips keep the labels: the
ABAW AUs are bilateral. Label entries equal to -1 (not annotated) stay -1 through smoothing and mixup.
"""

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import TrainerCallback

from ..configuration_au_mlt import NOT_ANNOTATED

KEY_COLUMN = "sample_key"


@dataclass
class AugmentationConfig:
    """Strength of each augmentation; `enabled=False` turns every geometric and colour change off."""

    enabled: bool = True
    scale_min: float = 0.8
    max_rotation: float = 10.0
    flip_probability: float = 0.5
    color_jitter: float = 0.2
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "scale_min": 0.0 < self.scale_min <= 1.0,
            "max_rotation": 0.0 <= self.max_rotation <= 180.0,
            "flip_probability": 0.0 <= self.flip_probability <= 1.0,
            "color_jitter": 0.0 <= self.color_jitter < 1.0,
            "mixup_alpha": self.mixup_alpha >= 0.0,
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"augmentation {name}: value {getattr(self, name)!r} is out of range")


class EpochState:
    """The current training epoch, shared by the transform, the collator and `AugmentationEpochCallback`."""

    def __init__(self) -> None:
        self.value = 0


class AugmentationEpochCallback(TrainerCallback):
    """Tells the augmentation which epoch starts, before `Trainer` creates the epoch's DataLoader iterator."""

    def __init__(self, epoch_state: EpochState) -> None:
        self.epoch_state = epoch_state

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is the integer epoch on a fresh epoch and `epoch + fraction` after a mid-epoch resume.
        self.epoch_state.value = int(math.floor(state.epoch or 0.0))


def sample_keys(batch: dict) -> list[int]:
    """One stable 63-bit key per row: the `sample_key` column, or a hash of (`video_id`, `frame`)."""
    if KEY_COLUMN in batch:
        return [int(key) for key in batch[KEY_COLUMN]]
    if "video_id" not in batch or "frame" not in batch:
        raise KeyError(
            f"training augmentation needs 'video_id' and 'frame' columns or a '{KEY_COLUMN}' column to seed each "
            f"sample's random draws; the batch has columns {sorted(batch)}"
        )
    return [
        int.from_bytes(hashlib.blake2b(f"{video}\0{frame}".encode(), digest_size=8).digest(), "little") >> 1
        for video, frame in zip(batch["video_id"], batch["frame"])
    ]


def sample_generator(seed: int, epoch: int, key: int) -> np.random.Generator:
    """The generator of one sample's draws in one epoch."""
    return np.random.default_rng([seed, epoch, key])


def processor_resize(image: Image.Image, size: int, resample: int) -> Image.Image:
    """RGB image resized to `size` x `size` the way the image processor resizes it."""
    return image.convert("RGB").resize((size, size), resample=resample)


def random_affine(image: Image.Image, config: AugmentationConfig, rng: np.random.Generator) -> Image.Image:
    """Zoom into a random square crop, rotate by a small angle and maybe mirror, in one bilinear warp."""
    size = image.width
    side = math.sqrt(rng.uniform(config.scale_min, 1.0))  # crop side as a fraction of the image side
    shift = rng.uniform(-1.0, 1.0, size=2) * (1.0 - side) * size / 2.0  # crop centre offset (x, y), pixels
    angle = math.radians(rng.uniform(-config.max_rotation, config.max_rotation))
    mirror = -1.0 if rng.random() < config.flip_probability else 1.0
    cos, sin = math.cos(angle), math.sin(angle)
    # PIL maps each output pixel to the input: input = M @ (output - centre) + centre + shift, M = side * R * F.
    matrix = side * np.array([[cos * mirror, -sin], [sin * mirror, cos]])
    centre = np.array([size / 2.0, size / 2.0])
    offset = centre + shift - matrix @ centre
    coefficients = (matrix[0, 0], matrix[0, 1], offset[0], matrix[1, 0], matrix[1, 1], offset[1])
    return image.transform((size, size), Image.AFFINE, coefficients, resample=Image.BILINEAR)


def color_jitter(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Pixels (H, W, 3) in [0, 1] with random brightness, contrast and saturation factors in 1 +- strength."""
    brightness, contrast, saturation = rng.uniform(1.0 - strength, 1.0 + strength, size=3).astype(np.float32)
    pixels = pixels * brightness
    gray = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W) luma
    pixels = (pixels - gray.mean()) * contrast + gray.mean()
    gray = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    pixels = gray[..., None] + (pixels - gray[..., None]) * saturation
    return np.clip(pixels, 0.0, 1.0)


def smooth_labels(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Annotated entries pulled towards 0.5 by `smoothing`; -1 entries unchanged."""
    smoothed = labels * (1.0 - smoothing) + smoothing / 2.0
    return torch.where(labels == NOT_ANNOTATED, labels, smoothed)


class ImageNormalizer:
    """The image processor's output size, rescaling and normalisation, read once from the processor."""

    def __init__(self, image_processor) -> None:
        size = image_processor.size
        height, width = (size["height"], size["width"]) if "height" in size else (size["shortest_edge"],) * 2
        if height != width:
            raise ValueError(f"image processor size {dict(size)}: AU-MLT expects square inputs")
        self.size = int(height)
        self.resample = int(getattr(image_processor, "resample", Image.BILINEAR))
        self.rescale_factor = float(image_processor.rescale_factor) if image_processor.do_rescale else 1.0
        normalize = image_processor.do_normalize
        self.mean = np.asarray(image_processor.image_mean if normalize else [0.0] * 3, dtype=np.float32)
        self.std = np.asarray(image_processor.image_std if normalize else [1.0] * 3, dtype=np.float32)

    def to_unit(self, image: Image.Image) -> np.ndarray:
        """(H, W, 3) float32 pixels after rescaling."""
        return np.asarray(image, dtype=np.float32) * np.float32(self.rescale_factor)

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """(3, H, W) normalised tensor from (H, W, 3) rescaled pixels."""
        return torch.from_numpy(np.ascontiguousarray(((pixels - self.mean) / self.std).transpose(2, 0, 1)))


class TrainTransform:
    """`with_transform` function for training rows: augmented `pixel_values`, `labels` and `sample_key`."""

    def __init__(self, image_processor, config: AugmentationConfig, seed: int, epoch_state: EpochState) -> None:
        self.normalizer = ImageNormalizer(image_processor)
        self.config = config
        self.seed = seed
        self.epoch_state = epoch_state

    def augmented_pixels(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        """(3, S, S) normalised tensor of one augmented image."""
        image = processor_resize(image, self.normalizer.size, self.normalizer.resample)
        if not self.config.enabled:
            return self.normalizer.to_tensor(self.normalizer.to_unit(image))
        pixels = self.normalizer.to_unit(random_affine(image, self.config, rng))
        if self.config.color_jitter > 0:
            pixels = color_jitter(pixels, self.config.color_jitter, rng)
        return self.normalizer.to_tensor(pixels)

    def __call__(self, batch: dict) -> dict:
        keys = sample_keys(batch)
        epoch = self.epoch_state.value
        pixel_values = [
            self.augmented_pixels(image, sample_generator(self.seed, epoch, key))
            for image, key in zip(batch["image"], keys)
        ]
        labels = [torch.tensor(row, dtype=torch.float32) for row in batch["labels"]]
        if self.config.label_smoothing > 0:
            labels = [smooth_labels(row, self.config.label_smoothing) for row in labels]
        return {"pixel_values": pixel_values, "labels": labels, KEY_COLUMN: keys}


class EvalTransform:
    """`with_transform` function for evaluation rows: the image processor's `pixel_values` and the labels."""

    def __init__(self, image_processor) -> None:
        self.image_processor = image_processor

    def __call__(self, batch: dict) -> dict:
        images = [image.convert("RGB") for image in batch["image"]]
        pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]  # (B, 3, S, S)
        return {
            "pixel_values": list(pixel_values),
            "labels": [torch.tensor(row, dtype=torch.float32) for row in batch["labels"]],
        }


def mixup(pixel_values: torch.Tensor, labels: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Each sample blended with a random partner by one Beta(alpha, alpha) weight; -1 where either is -1."""
    weight = float(rng.beta(alpha, alpha))
    partner = torch.from_numpy(rng.permutation(len(labels)))
    mixed_pixels = weight * pixel_values + (1.0 - weight) * pixel_values[partner]  # (B, 3, S, S)
    mixed_labels = weight * labels + (1.0 - weight) * labels[partner]  # (B, L)
    masked = (labels == NOT_ANNOTATED) | (labels[partner] == NOT_ANNOTATED)
    return mixed_pixels, torch.where(masked, torch.full_like(labels, NOT_ANNOTATED), mixed_labels)


@dataclass
class AUCollator:
    """Stacks rows into `pixel_values` (B, 3, S, S) and `labels` (B, L); mixes training batches when asked.

    Only training rows carry `sample_key`, so evaluation batches are never mixed.
    """

    mixup_alpha: float = 0.0
    seed: int = 0
    epoch_state: EpochState | None = None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        pixel_values = torch.stack([row["pixel_values"] for row in rows])
        labels = torch.stack([torch.as_tensor(row["labels"], dtype=torch.float32) for row in rows])
        if self.mixup_alpha > 0 and all(KEY_COLUMN in row for row in rows):
            epoch = self.epoch_state.value if self.epoch_state is not None else 0
            rng = np.random.default_rng([self.seed, epoch, *(int(row[KEY_COLUMN]) for row in rows)])
            pixel_values, labels = mixup(pixel_values, labels, self.mixup_alpha, rng)
        return {"pixel_values": pixel_values, "labels": labels}
