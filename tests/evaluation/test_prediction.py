"""predict_split: a frame model row by row, a temporal model video by video in frame order, gaps masked."""

import numpy as np
import pytest
import torch
from conftest import tiny_config
from datasets import Dataset
from PIL import Image

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.evaluation.prediction import predict_split
from modeling_au_mlt.hub.folder import image_processor_for

FRAMES = {"a": [1, 2, 3, 5, 6, 7], "b": [4, 5, 6, 7, 8]}  # video a misses frame 4


def shuffled_videos(rng: np.random.Generator) -> Dataset:
    rows = [(video, frame) for video, frames in FRAMES.items() for frame in frames]
    order = rng.permutation(len(rows))
    return Dataset.from_dict(
        {
            "image": [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in rows],
            "labels": [[1.0] * 12 for _ in rows],
            "video_id": [rows[i][0] for i in order],
            "frame": [rows[i][1] for i in order],
        }
    )


def frame_and_temporal_models() -> tuple[AUMLTModel, AUMLTModel]:
    """A frame model and a temporal model around it whose temporal layers are random (not the identity)."""
    torch.manual_seed(0)
    frame = AUMLTModel(tiny_config()).eval()
    model = AUMLTModel.from_frame_model(frame, temporal_layers=1, temporal_window=8)
    with torch.no_grad():
        for parameter in model.temporal_layers.parameters():
            parameter.normal_(0.0, 0.3)
    return frame, model.eval()


def test_temporal_model_scores_each_video_in_frame_order_with_its_gaps_masked():
    frame_model, model = frame_and_temporal_models()
    split = shuffled_videos(np.random.default_rng(0))
    processor = image_processor_for(model.config)
    predictions = predict_split(model, split, processor, batch_size=4, progress=False)
    rows = {(row["video_id"], row["frame"]): index for index, row in enumerate(split.remove_columns("image"))}
    for video, frames in FRAMES.items():
        # Independently: one clip per video (each fits one window), a frame_mask false at missing frame numbers.
        span = list(range(frames[0], frames[-1] + 1))
        pixels = torch.zeros(1, len(span), 3, 32, 32)
        mask = torch.zeros(1, len(span), dtype=torch.bool)
        for position, frame in enumerate(span):
            if frame in frames:
                image = split[rows[(video, frame)]]["image"]
                pixels[0, position] = processor(images=image, return_tensors="pt").pixel_values[0]
                mask[0, position] = True
        with torch.no_grad():
            expected = torch.sigmoid(model(pixels, frame_mask=mask).logits[0][mask[0]]).numpy()
        got = predictions.probabilities[[rows[(video, frame)] for frame in frames]]
        np.testing.assert_allclose(got, expected, atol=1e-6)
    # Context is used: scoring frames alone gives other probabilities.
    alone = predict_split(frame_model, split, processor, progress=False)
    assert not np.allclose(alone.probabilities, predictions.probabilities)


def test_temporal_model_needs_videos_and_one_row_per_frame():
    _, model = frame_and_temporal_models()
    split = shuffled_videos(np.random.default_rng(1))
    processor = image_processor_for(model.config)
    with pytest.raises(ValueError, match="needs `video_id` and `frame` columns"):
        predict_split(model, split.remove_columns("frame"), processor, progress=False)
    duplicated = split.map(lambda row: {"frame": 1 if row["video_id"] == "b" else row["frame"]})
    with pytest.raises(ValueError, match="video 'b' has two rows for one frame number"):
        predict_split(model, duplicated, processor, progress=False)
