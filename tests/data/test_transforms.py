"""Augmentation, normalisation and batching against hand computations and the image processor."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ViTImageProcessor
from transformers.trainer_callback import TrainerControl, TrainerState

from modeling_au_mlt.data.transforms import (
    KEY_COLUMN,
    AUCollator,
    AugmentationConfig,
    AugmentationEpochCallback,
    EpochState,
    EvalTransform,
    TrainTransform,
    color_jitter,
    mixup,
    random_affine,
    sample_keys,
    smooth_labels,
)


class ScriptedRng:
    """Stands in for a numpy Generator: returns the given draws in order."""

    def __init__(self, uniform=(), random=(), beta=(), permutation=None):
        self.uniforms, self.randoms, self.betas = list(uniform), list(random), list(beta)
        self.order = permutation

    def uniform(self, low, high, size=None):
        return self.uniforms.pop(0)

    def random(self):
        return self.randoms.pop(0)

    def beta(self, a, b):
        return self.betas.pop(0)

    def permutation(self, n):
        return np.asarray(self.order)


@pytest.fixture
def processor():
    return ViTImageProcessor(size={"height": 32, "width": 32})


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(4)]
    return {
        "image": images,
        "labels": [[1.0, 0.0, -1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]],
        "video_id": ["a", "a", "b", "b"],
        "frame": [1, 2, 1, 2],
    }


def square_image(size: int = 16) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_unaugmented_training_pixels_equal_the_image_processor(processor, batch):
    transform = TrainTransform(processor, AugmentationConfig(enabled=False), seed=0, epoch_state=EpochState())
    ours = torch.stack(transform(batch)["pixel_values"])
    reference = processor(images=[image.convert("RGB") for image in batch["image"]], return_tensors="pt")[
        "pixel_values"
    ]
    assert ours.shape == (4, 3, 32, 32) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_eval_transform_is_the_processor_without_augmentation(processor, batch):
    out = EvalTransform(processor)(batch)
    assert set(out) == {"pixel_values", "labels"}  # no sample key: evaluation batches are never mixed
    reference = processor(images=batch["image"], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.stack(out["pixel_values"]), reference)
    assert out["labels"][0].tolist() == [1.0, 0.0, -1.0]


def test_affine_identity_flip_and_quarter_turn():
    image = square_image()
    pixels = np.asarray(image).astype(int)
    config = AugmentationConfig(max_rotation=90.0)
    identity = random_affine(image, config, ScriptedRng(uniform=[1.0, np.zeros(2), 0.0], random=[1.0]))
    flipped = random_affine(image, config, ScriptedRng(uniform=[1.0, np.zeros(2), 0.0], random=[0.0]))
    turned = random_affine(image, config, ScriptedRng(uniform=[1.0, np.zeros(2), 90.0], random=[1.0]))
    np.testing.assert_array_equal(np.asarray(identity), pixels)
    np.testing.assert_array_equal(np.asarray(flipped), pixels[:, ::-1])
    np.testing.assert_allclose(np.asarray(turned), np.rot90(pixels, 1), atol=1)  # cos(90 deg) is not exactly 0


def test_affine_zoom_into_the_top_left_quarter():
    # A horizontal ramp, value 8 * column: bilinear sampling of it is exact away from the borders.
    ramp = np.repeat((8 * np.arange(16, dtype=np.uint8))[None, :, None], 16, axis=0).repeat(3, axis=2)
    # area 1/4 -> crop side 1/2; shift (-1, -1) puts the crop at the top-left corner: input columns 0..8.
    zoomed = random_affine(
        Image.fromarray(ramp),
        AugmentationConfig(scale_min=0.25),
        ScriptedRng(uniform=[0.25, -np.ones(2), 0.0], random=[1.0]),
    )
    # output column j (centre j + 0.5) samples input x = (j + 0.5) / 2, i.e. column index x - 0.5: value 4 j - 2
    np.testing.assert_allclose(np.asarray(zoomed)[5, 1:, 0], 4 * np.arange(1, 16) - 2, atol=1)


def test_color_jitter_factors_by_hand():
    pixels = np.random.default_rng(2).uniform(0.2, 0.6, (4, 5, 3)).astype(np.float32)
    brighter = color_jitter(pixels, 0.5, ScriptedRng(uniform=[np.array([1.2, 1.0, 1.0], np.float32)]))
    np.testing.assert_allclose(brighter, np.clip(pixels * 1.2, 0, 1), atol=1e-6)
    flat = color_jitter(pixels, 0.99, ScriptedRng(uniform=[np.array([1.0, 0.0, 1.0], np.float32)]))
    luma_mean = (pixels @ np.array([0.299, 0.587, 0.114])).mean()
    np.testing.assert_allclose(flat, np.full_like(pixels, luma_mean), atol=1e-6)
    gray = color_jitter(pixels, 0.99, ScriptedRng(uniform=[np.array([1.0, 1.0, 0.0], np.float32)]))
    np.testing.assert_allclose(
        gray,
        np.repeat(pixels @ np.array([0.299, 0.587, 0.114], np.float32)[:, None], 3, 1).reshape(pixels.shape),
        atol=1e-6,
    )


def test_augmentation_is_keyed_by_seed_epoch_and_sample(processor, batch):
    epoch = EpochState()
    transform = TrainTransform(processor, AugmentationConfig(), seed=3, epoch_state=epoch)
    first = transform(batch)["pixel_values"]
    # the same sample in another batch, in another position, gets the same draws
    reordered = {key: values[::-1] for key, values in batch.items()}
    np.testing.assert_array_equal(transform(reordered)["pixel_values"][3].numpy(), first[0].numpy())
    assert not torch.equal(
        first[0], TrainTransform(processor, AugmentationConfig(), 4, epoch)(batch)["pixel_values"][0]
    )
    epoch.value = 1
    assert not torch.equal(first[0], transform(batch)["pixel_values"][0])
    epoch.value = 0
    assert torch.equal(first[0], transform(batch)["pixel_values"][0])


def test_sample_keys_hash_video_and_frame_or_use_the_key_column():
    keys = sample_keys({"video_id": ["a", "a", "b"], "frame": [1, 2, 1]})
    assert len(set(keys)) == 3 and all(0 <= key < 2**63 for key in keys)
    assert keys == sample_keys({"video_id": ["a", "a", "b"], "frame": [1, 2, 1]})
    assert sample_keys({KEY_COLUMN: [7, 9]}) == [7, 9]
    with pytest.raises(KeyError, match="video_id"):
        sample_keys({"image": [], "labels": []})


def test_label_smoothing_keeps_unannotated_entries():
    smoothed = smooth_labels(torch.tensor([[1.0, 0.0, -1.0]]), 0.1)
    torch.testing.assert_close(smoothed, torch.tensor([[0.95, 0.05, -1.0]]))


def test_mixup_by_hand_masks_unannotated_pairs():
    pixels = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    labels = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    mixed_pixels, mixed_labels = mixup(pixels, labels, 0.4, ScriptedRng(beta=[0.3], permutation=[1, 0]))
    torch.testing.assert_close(mixed_pixels[0], 0.3 * pixels[0] + 0.7 * pixels[1])
    torch.testing.assert_close(mixed_labels, torch.tensor([[0.3, 0.0, -1.0], [0.7, 0.0, -1.0]]))


def test_collator_mixes_training_rows_only(processor, batch):
    epoch = EpochState()
    config = AugmentationConfig(mixup_alpha=0.4)
    train_rows = TrainTransform(processor, config, 0, epoch)(batch)
    rows = [dict(zip(train_rows, values)) for values in zip(*train_rows.values())]
    collator = AUCollator(mixup_alpha=0.4, seed=0, epoch_state=epoch)
    mixed = collator(rows)
    assert set(mixed) == {"pixel_values", "labels"}
    assert not torch.equal(mixed["pixel_values"], torch.stack(train_rows["pixel_values"]))
    assert torch.equal(collator(rows)["pixel_values"], mixed["pixel_values"])  # keyed, so repeatable
    eval_rows = EvalTransform(processor)(batch)
    plain = collator([dict(zip(eval_rows, values)) for values in zip(*eval_rows.values())])
    assert torch.equal(plain["pixel_values"], torch.stack(eval_rows["pixel_values"]))
    assert plain["labels"].tolist() == batch["labels"]


def test_epoch_callback_floors_the_trainer_epoch():
    epoch = EpochState()
    callback = AugmentationEpochCallback(epoch)
    for trainer_epoch, expected in ((0.0, 0), (2.0, 2), (1.5, 1), (None, 0)):
        callback.on_epoch_begin(None, TrainerState(epoch=trainer_epoch), TrainerControl())
        assert epoch.value == expected


def test_out_of_range_settings_are_named():
    with pytest.raises(ValueError, match="scale_min"):
        AugmentationConfig(scale_min=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        AugmentationConfig(label_smoothing=1.0)
