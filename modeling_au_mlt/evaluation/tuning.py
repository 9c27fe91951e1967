"""Scoring and post-processing of AU probabilities with the ABAW metric.

- `make_compute_metrics`: a `compute_metrics` for `Trainer(..., batch_eval_metrics=True)` that pools
  TP/FP/FN batch by batch (`AUF1Accumulator`), so evaluation never holds all logits twice.
- `tune_thresholds`: one decision threshold per AU maximising that AU's F1 (grid over [0, 1]), guarded:
  an AU whose best F1 does not beat predicting "present" everywhere by `GUARD_MARGIN` keeps 0.5
  (`guarded_thresholds` also says which AUs did).
- `smooth_probabilities` / `tune_smoothing_window`: centred moving average of probabilities over
  each video's frames, window chosen on validation (the authors' post-processing in their public ABAW3 code).
- `tune_post_processing`: both, as stored in the model config.
- `au_scores`: per-AU precision/recall/F1 and their mean through the local `evaluate` module.
Predictions are positive where probability >= threshold.
"""

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np
import torch

from .au_f1.au_f1 import check_references, f1_from_counts, pooled_counts, scores_from_counts

DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.linspace(0.0, 1.0, 101)  # step 0.01; holds 0.5 exactly, so tuning never loses to it
_TIE_TOLERANCE = 1e-12
# An AU the model cannot see gets probabilities unrelated to its labels; the best threshold then sits near 0
# (predict present everywhere, F1 = 2r / (1 + r) at positive rate r), plus a chance gain. With probabilities
# independent of the labels, the grid's best F1 beat that always-present F1 by less than 0.02 in 99 % of
# 100 draws for 200 positives or more (0.014 at 2000 frames, r = 0.1; 0.038 at 60 positives).
GUARD_MARGIN = 0.02


def au_f1_metric_path() -> str:
    """Folder of the local `evaluate` module `au_f1` (load it with `evaluate.load(path)`, offline)."""
    return str(Path(__file__).resolve().parent / "au_f1")


@lru_cache(maxsize=1)
def _au_f1_metric() -> evaluate.EvaluationModule:
    """The `au_f1` module, loaded once per process."""
    return evaluate.load(au_f1_metric_path())


def decision_thresholds(thresholds: Sequence[float] | None, num_labels: int) -> np.ndarray:
    """Thresholds as an array (L,); `None` gives 0.5 for every AU."""
    if thresholds is None:
        return np.full(num_labels, DEFAULT_THRESHOLD)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (num_labels,):
        raise ValueError(f"thresholds: expected {num_labels} values, one per AU, got shape {thresholds.shape}")
    return thresholds


def binarize(probs: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """0/1 predictions (N, L) int8: 1 where `probs` (N, L) >= the AU's threshold (0.5 by default)."""
    probs = np.asarray(probs)
    return (probs >= decision_thresholds(thresholds, probs.shape[-1])).astype(np.int8)


def _first_tensor(values) -> torch.Tensor:
    """The logits (or labels) the Trainer passes, as a float tensor on the CPU."""
    if isinstance(values, (tuple, list)):  # model outputs beyond the logits (hidden states) come as a tuple
        values = values[0]
    return torch.as_tensor(values).detach().float().cpu()


class AUF1Accumulator:
    """Pools TP/FP/FN per AU over batches; optionally keeps probabilities and labels for tuning."""

    def __init__(
        self, label_names: Sequence[str], thresholds: Sequence[float] | None = None, keep_probabilities: bool = False
    ):
        self.label_names = list(label_names)
        self.thresholds = decision_thresholds(thresholds, len(self.label_names))
        self.keep_probabilities = keep_probabilities
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        num_labels = len(self.label_names)
        self.counts = [np.zeros(num_labels, dtype=np.int64) for _ in range(3)]  # TP, FP, FN
        self._probabilities: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch of probabilities (B, L) and 1/0/-1 labels (B, L)."""
        probs, labels = np.asarray(probs, dtype=np.float32), np.asarray(labels)
        if probs.shape != labels.shape or probs.shape[-1] != len(self.label_names):
            raise ValueError(
                f"probabilities {probs.shape} and labels {labels.shape} must both be (batch, {len(self.label_names)})"
            )
        batch_counts = pooled_counts(binarize(probs, self.thresholds), labels)
        self.counts = [total + batch for total, batch in zip(self.counts, batch_counts)]
        if self.keep_probabilities:
            self._probabilities.append(probs)
            self._labels.append(labels.astype(np.int8))

    def result(self) -> dict[str, float]:
        """`mean_f1` and per-AU `f1_`, `precision_`, `recall_` over every batch so far."""
        return scores_from_counts(*self.counts, label_names=self.label_names)

    def probabilities_and_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """All kept probabilities (N, L) and labels (N, L); needs `keep_probabilities=True`."""
        if not self.keep_probabilities:
            raise RuntimeError("probabilities were not kept: create the accumulator with keep_probabilities=True")
        num_labels = len(self.label_names)
        if not self._probabilities:
            return np.zeros((0, num_labels), np.float32), np.zeros((0, num_labels), np.int8)
        return np.concatenate(self._probabilities), np.concatenate(self._labels)


class AUComputeMetrics:
    """`compute_metrics` for `Trainer` giving `mean_f1` and `f1_<AU>` (logged as `eval_mean_f1`, ...).

    With `batch_eval_metrics=True`, Trainer (5.x) calls it once per batch with that batch's logits and
    labels and `compute_result=True` on the last batch only: counts are pooled and the scores returned
    (and the counts reset for the next evaluation) at that last call. Without `batch_eval_metrics` the
    single call with all logits defaults to `compute_result=True`. With `keep_probabilities`, the
    probabilities and labels of the last completed evaluation stay in `last_probabilities` and
    `last_labels` (for threshold tuning without a second pass over the split).
    """

    def __init__(
        self, label_names: Sequence[str], thresholds: Sequence[float] | None = None, keep_probabilities: bool = False
    ):
        self.accumulator = AUF1Accumulator(label_names, thresholds, keep_probabilities)
        self.last_probabilities: np.ndarray | None = None
        self.last_labels: np.ndarray | None = None

    def __call__(self, eval_prediction, compute_result: bool = True) -> dict[str, float]:
        probs = torch.sigmoid(_first_tensor(eval_prediction.predictions)).numpy()  # (B, L)
        self.accumulator.update(probs, _first_tensor(eval_prediction.label_ids).numpy())
        if not compute_result:
            return {}
        scores = self.accumulator.result()
        if self.accumulator.keep_probabilities:
            self.last_probabilities, self.last_labels = self.accumulator.probabilities_and_labels()
        self.accumulator.reset()
        return {key: value for key, value in scores.items() if key == "mean_f1" or key.startswith("f1_")}


def make_compute_metrics(
    label_names: Sequence[str], thresholds: Sequence[float] | None = None, keep_probabilities: bool = False
) -> AUComputeMetrics:
    """An `AUComputeMetrics` for `Trainer(compute_metrics=...)`, usable with `batch_eval_metrics=True`."""
    return AUComputeMetrics(label_names, thresholds, keep_probabilities)


def _counts_over_grid(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP, FN (each (G,)) of one AU's probabilities (N,) at every threshold of `grid` (G,)."""
    positives = np.sort(probs[labels == 1])
    negatives = np.sort(probs[labels == 0])
    # entries below threshold t are predicted absent; `searchsorted(..., "left")` counts p < t
    true_positives = len(positives) - np.searchsorted(positives, grid, side="left")
    false_positives = len(negatives) - np.searchsorted(negatives, grid, side="left")
    return true_positives, false_positives, len(positives) - true_positives


def always_present_f1(labels: np.ndarray) -> np.ndarray:
    """Per AU (L,), the F1 of predicting every annotated entry of `labels` (N, L) present: 2P / (2P + N)."""
    labels = np.asarray(labels)
    positives = (labels == 1).sum(axis=0)
    return f1_from_counts(positives, (labels == 0).sum(axis=0), np.zeros_like(positives))


def _best_thresholds(
    probs: np.ndarray, labels: np.ndarray, grid: np.ndarray, margin: float | None
) -> tuple[list[float], np.ndarray, list[int]]:
    """Per-AU F1-maximising thresholds, the F1 (L,) each reaches, and the AUs (indices) set back to 0.5.

    Ties go to the threshold closest to 0.5. With a `margin`, an AU whose best F1 is not above the
    always-present F1 plus `margin` gets 0.5 and its F1 at 0.5 instead (`margin=None`: no guard).
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.shape != labels.shape or probs.ndim != 2:
        raise ValueError(f"probabilities {probs.shape} and labels {labels.shape} must both be (frames, AUs)")
    check_references(labels)
    present = always_present_f1(labels)  # (L,)
    thresholds, best_f1, fell_back = [], np.zeros(probs.shape[1]), []
    for index in range(probs.shape[1]):
        column, truth = probs[:, index], labels[:, index]
        f1 = f1_from_counts(*_counts_over_grid(column, truth, grid))  # (G,)
        candidates = np.flatnonzero(f1 >= f1.max() - _TIE_TOLERANCE)
        best = candidates[np.argmin(np.abs(grid[candidates] - DEFAULT_THRESHOLD))]
        if margin is not None and f1[best] <= present[index] + margin:
            fell_back.append(index)
            half = np.array([DEFAULT_THRESHOLD])
            thresholds.append(DEFAULT_THRESHOLD)
            best_f1[index] = f1_from_counts(*_counts_over_grid(column, truth, half))[0]
        else:
            thresholds.append(float(round(grid[best], 6)))
            best_f1[index] = f1[best]
    return thresholds, best_f1, fell_back


def guarded_thresholds(
    probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] | None = None, margin: float | None = GUARD_MARGIN
) -> tuple[list[float], list[int]]:
    """`tune_thresholds` with the guard's `margin` (None: no guard), and the indices of the AUs kept at 0.5."""
    grid = THRESHOLD_GRID if grid is None else np.asarray(grid, dtype=np.float64)
    thresholds, _, fell_back = _best_thresholds(probs, labels, grid, margin)
    return thresholds, fell_back


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    grid: Sequence[float] | None = None,
    guard: bool = True,
    margin: float = GUARD_MARGIN,
) -> list[float]:
    """Per AU, the threshold of `grid` (default 0, 0.01, ..., 1) maximising that AU's F1 on `probs` (N, L)
    against 1/0/-1 `labels` (N, L); ties go to the one closest to 0.5.

    Guard (`guard=True`): an AU whose best F1 is not above the F1 of predicting it present everywhere
    (`always_present_f1`) plus `margin` keeps 0.5 -- the model shows no skill on it that a threshold
    could use. That includes an AU without positives (every F1 is 0). `guard=False` gives the plain maxima.
    """
    return guarded_thresholds(probs, labels, grid, margin if guard else None)[0]


def smooth_probabilities(
    probs: np.ndarray, video_ids: Sequence[str], window: int | None, frames: Sequence[int] | None = None
) -> np.ndarray:
    """Centred moving average (float64 (N, L)) of `probs` (N, L) over `window` rows of the same video.

    Rows of a video are taken in row order, or in `frames` order when given; near a video's ends the
    mean runs over the rows that exist. `window` None or 1 returns the probabilities unchanged.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if window is None or window == 1:
        return probs.copy()
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window: expected a positive integer or None, got {window!r}")
    if len(video_ids) != len(probs) or (frames is not None and len(frames) != len(probs)):
        raise ValueError(f"video_ids ({len(video_ids)}) and frames must have one entry per row ({len(probs)})")
    videos = np.unique(np.asarray(video_ids), return_inverse=True)[1]  # (N,) video code per row
    order = np.lexsort((np.asarray(frames), videos)) if frames is not None else np.argsort(videos, kind="stable")
    rows = np.arange(len(order))
    first = np.r_[True, videos[order][1:] != videos[order][:-1]]  # (N,) start of a video in sorted order
    video_start = np.maximum.accumulate(np.where(first, rows, 0))  # (N,)
    video_stop = np.r_[np.flatnonzero(first)[1:], len(rows)][np.cumsum(first) - 1]  # (N,)
    starts = np.maximum(rows - (window - 1) // 2, video_start)
    stops = np.minimum(rows + window // 2 + 1, video_stop)
    sums = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs[order], axis=0)])  # (N + 1, L)
    smoothed = np.empty_like(probs)
    smoothed[order] = (sums[stops] - sums[starts]) / (stops - starts)[:, None]
    return smoothed


def _mean_f1(probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] | None, guard: bool) -> float:
    """Mean F1 at fixed `thresholds`, or at thresholds tuned (guarded if `guard`) on these probabilities if `None`."""
    if thresholds is None:
        return float(_best_thresholds(probs, labels, THRESHOLD_GRID, GUARD_MARGIN if guard else None)[1].mean())
    return scores_from_counts(*pooled_counts(binarize(probs, thresholds), labels))["mean_f1"]


def tune_smoothing_window(
    probs: np.ndarray,
    labels: np.ndarray,
    video_ids: Sequence[str],
    windows: Iterable[int] = range(5, 26, 2),
    thresholds: Sequence[float] | None = None,
    frames: Sequence[int] | None = None,
    guard: bool = True,
) -> int | None:
    """The moving-average window of `windows` with the best mean F1, or `None` if none beats no smoothing.

    Each candidate is scored at `thresholds`, or, when `thresholds` is `None`, at per-AU thresholds
    tuned on its own smoothed probabilities (window and thresholds chosen jointly, as the authors did; with
    `tune_thresholds`' guard when `guard`); re-tune the thresholds on the smoothed probabilities afterwards.
    """
    best_window, best_score = None, _mean_f1(probs, labels, thresholds, guard)
    for window in windows:
        score = _mean_f1(smooth_probabilities(probs, video_ids, window, frames), labels, thresholds, guard)
        if score > best_score + _TIE_TOLERANCE:
            best_window, best_score = int(window), score
    return best_window


def tune_post_processing(
    probs: np.ndarray,
    labels: np.ndarray,
    video_ids: Sequence[str] | None = None,
    windows: Iterable[int] = range(5, 26, 2),
    frames: Sequence[int] | None = None,
    guard: bool = True,
) -> tuple[int | None, list[float]]:
    """Smoothing window (None without `video_ids` or when smoothing does not help) and per-AU thresholds
    tuned on the probabilities smoothed with it (`tune_thresholds`, guarded when `guard`): the values to
    store as `config.smoothing_window` and `config.thresholds`."""
    window = None
    if video_ids is not None:
        window = tune_smoothing_window(probs, labels, video_ids, windows, frames=frames, guard=guard)
    return window, tune_thresholds(smooth_probabilities(probs, video_ids, window, frames), labels, guard=guard)


def au_scores(
    probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] | None, label_names: Sequence[str]
) -> dict[str, float]:
    """`mean_f1` and per-AU `f1_`, `precision_`, `recall_` of `probs` (N, L) at `thresholds` (None: 0.5)
    against 1/0/-1 `labels` (N, L), computed by the `au_f1` evaluate module."""
    return _au_f1_metric().compute(
        predictions=binarize(probs, thresholds),
        references=np.asarray(labels),
        label_names=list(label_names),
    )
