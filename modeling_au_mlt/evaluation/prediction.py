"""Run an AU model over a dataset split: probabilities per frame, in the split's row order.

The split is a `datasets.Dataset` as written by `prepare_abaw.py` / `prepare_csv.py`: an `image`
column (PIL images) and, when present, `labels` (floats, -1 = not annotated), `video_id` and `frame`.
Used by `scripts/evaluate_model.py` (training scores its splits through the Trainer instead).
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


@torch.inference_mode()
def predict_split(
    model: torch.nn.Module, dataset: Dataset, image_processor, batch_size: int = 32, progress: bool = True
) -> SplitPredictions:
    """Sigmoid probabilities of `model` on every row of `dataset`, batched, without gradients.

    Images go through `image_processor` (resize + normalisation, no augmentation). The model stays on
    its device and dtype; it is switched to eval mode.
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
    parameter = next(model.parameters())
    batches = []
    images = dataset.select_columns(["image"]).iter(batch_size=batch_size)
    total = -(-len(dataset) // batch_size)
    for batch in tqdm(images, total=total, desc="predict", unit="batch", disable=not progress):
        pixel_values = image_processor(images=[image.convert("RGB") for image in batch["image"]], return_tensors="pt")[
            "pixel_values"
        ]  # (B, 3, H, W)
        logits = model(pixel_values=pixel_values.to(device=parameter.device, dtype=parameter.dtype)).logits  # (B, L)
        batches.append(torch.sigmoid(logits.float()).cpu().numpy())
    probabilities = np.concatenate(batches) if batches else np.zeros((0, num_labels), np.float32)
    return SplitPredictions(
        probabilities=probabilities,
        labels=labels,
        video_ids=_column(dataset, "video_id", str),
        frames=_column(dataset, "frame", np.int64),
    )
