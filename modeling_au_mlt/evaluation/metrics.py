"""The ABAW AU F1 of decisions at thresholds, at once or pooled batch by batch for `Trainer`.

- `binarize`: 0/1 decisions of probabilities at per-AU thresholds (`None`: `DEFAULT_THRESHOLD` for every AU);
  positive where probability >= threshold.
- `au_scores`: per-AU precision/recall/F1 and their mean through the local `evaluate` module `au_f1`.
- `AUComputeMetrics`: a `compute_metrics` for `Trainer(..., batch_eval_metrics=True)` that pools TP/FP/FN
  batch by batch (`AUF1Accumulator`), so evaluation never holds all logits twice.
"""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np
import torch

from ..configuration_au_mlt import DEFAULT_THRESHOLD
from .au_f1.au_f1 import pooled_counts, scores_from_counts


def au_f1_metric_path() -> str:
    """Folder of the local `evaluate` module `au_f1` (load it with `evaluate.load(path)`, offline)."""
    return str(Path(__file__).resolve().parent / "au_f1")


@lru_cache(maxsize=1)
def _au_f1_metric() -> evaluate.EvaluationModule:
    """The `au_f1` module, loaded once per process."""
    return evaluate.load(au_f1_metric_path())


def decision_thresholds(thresholds: Sequence[float] | None, num_labels: int) -> np.ndarray:
    """Thresholds as an array (L,); `None` gives `DEFAULT_THRESHOLD` for every AU."""
    if thresholds is None:
        return np.full(num_labels, DEFAULT_THRESHOLD)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (num_labels,):
        raise ValueError(f"thresholds: expected {num_labels} values, one per AU, got shape {thresholds.shape}")
    return thresholds


def binarize(probs: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """0/1 predictions (N, L) int8: 1 where `probs` (N, L) >= the AU's threshold (`DEFAULT_THRESHOLD` by default)."""
    probs = np.asarray(probs)
    return (probs >= decision_thresholds(thresholds, probs.shape[-1])).astype(np.int8)


def au_scores(
    probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] | None, label_names: Sequence[str]
) -> dict[str, float]:
    """`mean_f1` and per-AU `f1_`, `precision_`, `recall_` of `probs` (N, L) at `thresholds` (None: the
    default) against 1/0/-1 `labels` (N, L), computed by the `au_f1` evaluate module."""
    return _au_f1_metric().compute(
        predictions=binarize(probs, thresholds),
        references=np.asarray(labels),
        label_names=list(label_names),
    )


def _first_tensor(values) -> torch.Tensor:
    """The logits (or labels) the Trainer passes, as a float tensor on the CPU."""
    if isinstance(values, (tuple, list)):  # model outputs beyond the logits (hidden states) come as a tuple
        values = values[0]
    return torch.as_tensor(values).detach().float().cpu()


class AUF1Accumulator:
    """Pools TP/FP/FN per AU over batches of decisions at `DEFAULT_THRESHOLD`."""

    def __init__(self, label_names: Sequence[str]):
        self.label_names = list(label_names)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.counts = [np.zeros(len(self.label_names), dtype=np.int64) for _ in range(3)]  # TP, FP, FN

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch of probabilities (B, L) and 1/0/-1 labels (B, L)."""
        probs, labels = np.asarray(probs, dtype=np.float32), np.asarray(labels)
        if probs.shape != labels.shape or probs.shape[-1] != len(self.label_names):
            raise ValueError(
                f"probabilities {probs.shape} and labels {labels.shape} must both be (batch, {len(self.label_names)})"
            )
        batch_counts = pooled_counts(binarize(probs), labels)
        self.counts = [total + batch for total, batch in zip(self.counts, batch_counts)]

    def result(self) -> dict[str, float]:
        """`mean_f1` and per-AU `f1_`, `precision_`, `recall_` over every batch so far."""
        return scores_from_counts(*self.counts, label_names=self.label_names)


class AUComputeMetrics:
    """`compute_metrics` for `Trainer` giving `mean_f1` and `f1_<AU>` (logged as `eval_mean_f1`, ...).

    With `batch_eval_metrics=True`, Trainer (5.x) calls it once per batch with that batch's logits and
    labels and `compute_result=True` on the last batch only: counts are pooled and the scores returned
    (and the counts reset for the next evaluation) at that last call. Without `batch_eval_metrics` the
    single call with all logits defaults to `compute_result=True`.
    """

    def __init__(self, label_names: Sequence[str]):
        self.accumulator = AUF1Accumulator(label_names)

    def __call__(self, eval_prediction, compute_result: bool = True) -> dict[str, float]:
        # Clips' (B, T, L) pool like B * T frames; their -1 labels (gaps, unscored frames) are ignored.
        logits = _first_tensor(eval_prediction.predictions)
        probs = torch.sigmoid(logits).reshape(-1, logits.shape[-1]).numpy()  # (B, L) or (B * T, L)
        self.accumulator.update(probs, _first_tensor(eval_prediction.label_ids).reshape(-1, logits.shape[-1]).numpy())
        if not compute_result:
            return {}
        scores = self.accumulator.result()
        self.accumulator.reset()
        return {key: value for key, value in scores.items() if key == "mean_f1" or key.startswith("f1_")}
