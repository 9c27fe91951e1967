"""Run an AU model over a dataset split: probabilities per frame, in the split's row order.

The split is a `datasets.Dataset` as written by `prepare_abaw.py` / `prepare_csv.py`: an `image`
column (PIL images) and, when present, `labels` (floats, -1 = not annotated), `video_id` and `frame`.
Used by `scripts/evaluate_model.py` and the benchmarks (training scores its splits through the Trainer instead).
"""

from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm


@dataclass
class SplitPredictions:
    """Model outputs over a split, row for row."""

    probabilities: np.ndarray  # (N, L) float32
    labels: np.ndarray | None  # (N, L) float32, -1 = not annotated; None without a `labels` column
    video_ids: np.ndarray | None  # (N,) str; None without a `video_id` column
    frames: np.ndarray | None  # (N,) int; None without a `frame` column


def _column(dataset: Dataset, name: str, dtype) -> np.ndarray | None:
    """Column `name` as an array (no image decoding), or None when the split has no such column."""
    if name not in dataset.column_names:
        return None
    return np.asarray(dataset.select_columns([name]).with_format("numpy")[:][name], dtype=dtype)


def _pixel_batches(dataset: Dataset, image_processor, batch_size: int, parameter: torch.Tensor):
    """Processed `pixel_values` (B, 3, H, W) of `dataset`'s images, `batch_size` rows at a time, on the model's
    device and dtype."""
    for batch in dataset.select_columns(["image"]).iter(batch_size=batch_size):
        images = [image.convert("RGB") for image in batch["image"]]
        pixel_values = image_processor(images=images, return_tensors="pt")["pixel_values"]
        yield pixel_values.to(device=parameter.device, dtype=parameter.dtype)


def _frame_probabilities(model, dataset: Dataset, image_processor, batch_size: int, progress: bool) -> np.ndarray:
    """(N, L) probabilities of every row scored alone."""
    parameter = next(model.parameters())
    batches = _pixel_batches(dataset, image_processor, batch_size, parameter)
    total = -(-len(dataset) // batch_size)
    probabilities = [
        torch.sigmoid(model(pixel_values=pixel_values).logits.float()).cpu().numpy()  # (B, L)
        for pixel_values in tqdm(batches, total=total, desc="predict", unit="batch", disable=not progress)
    ]
    return np.concatenate(probabilities) if probabilities else np.zeros((0, model.config.num_labels), np.float32)


def _video_probabilities(
    model, dataset: Dataset, image_processor, batch_size: int, causal: bool | None, progress: bool
) -> np.ndarray:
    """(N, L) probabilities of a temporal model: each video's frames in frame order, scored with their
    neighbours by `model.video_logits`; frame numbers without a row are missing frames (masked)."""
    video_ids, frames = _column(dataset, "video_id", str), _column(dataset, "frame", np.int64)
    if video_ids is None or frames is None:
        raise ValueError(
            f"dataset: a temporal model scores videos and needs `video_id` and `frame` columns, found "
            f"{dataset.column_names}"
        )
    parameter = next(model.parameters())
    probabilities = np.zeros((len(dataset), model.config.num_labels), np.float32)
    for video in tqdm(np.unique(video_ids), desc="predict", unit="video", disable=not progress):
        rows = np.flatnonzero(video_ids == video)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        positions = frames[rows] - frames[rows[0]]  # (rows,) offsets in the video's frame span
        if np.any(np.diff(positions) == 0):
            raise ValueError(
                f"dataset: video {str(video)!r} has two rows for one frame number; expected one per frame"
            )
        pixels = _pixel_batches(dataset.select(rows), image_processor, batch_size, parameter)
        states = torch.cat([model.frame_states(pixel_values) for pixel_values in pixels])  # (rows, L, d)
        span = states.new_zeros(int(positions[-1]) + 1, *states.shape[1:])  # (frames, L, d)
        present = torch.zeros(len(span), dtype=torch.bool, device=states.device)
        span[positions], present[positions] = states, True
        logits = model.video_logits(span, present, causal)[positions]  # (rows, L)
        probabilities[rows] = torch.sigmoid(logits.float()).cpu().numpy()
    return probabilities


@torch.inference_mode()
def predict_split(
    model: torch.nn.Module,
    dataset: Dataset,
    image_processor,
    batch_size: int = 32,
    progress: bool = True,
    causal: bool | None = None,
) -> SplitPredictions:
    """Sigmoid probabilities of `model` on every row of `dataset`, batched, without gradients.

    Images go through `image_processor` (resize + normalisation, no augmentation). A temporal model
    (`temporal_layers > 0`) scores each video (`video_id`, ordered by `frame`) with sliding windows, past
    frames only when `causal` (default: the model's `temporal_causal`). The model stays on its device and
    dtype; it is switched to eval mode.
    """
    if "image" not in dataset.column_names:
        raise ValueError(f"dataset: expected an `image` column, found {dataset.column_names}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    num_labels = model.config.num_labels
    labels = _column(dataset, "labels", np.float32)
    if labels is not None and labels.shape != (len(dataset), num_labels):
        raise ValueError(
            f"dataset: `labels` has shape {labels.shape} but the model predicts {num_labels} labels "
            f"({', '.join(model.config.label_names)}) per row"
        )
    model.eval()
    if model.config.temporal_layers:
        probabilities = _video_probabilities(model, dataset, image_processor, batch_size, causal, progress)
    else:
        probabilities = _frame_probabilities(model, dataset, image_processor, batch_size, progress)
    return SplitPredictions(
        probabilities=probabilities,
        labels=labels,
        video_ids=_column(dataset, "video_id", str),
        frames=_column(dataset, "frame", np.int64),
    )
