"""Post-processing of AU probabilities tuned for the ABAW metric: per-AU thresholds and video smoothing.

- `tune_thresholds`: one decision threshold per AU maximising that AU's F1 (grid over [0, 1]), guarded:
  an AU whose best F1 does not beat predicting "present" everywhere by `GUARD_MARGIN` keeps
  `DEFAULT_THRESHOLD` (`guarded_thresholds` also says which AUs did).
- `smooth_probabilities` / `tune_smoothing_window`: centred moving average of probabilities over
  each video's frames, window chosen on validation (the authors' post-processing in their public ABAW3 code).
- `tune_post_processing`: both, as stored in the model config; training and `scripts/evaluate_model.py`
  tune with it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..configuration_au_mlt import DEFAULT_THRESHOLD
from .au_f1.au_f1 import check_references, f1_from_counts, pooled_counts, scores_from_counts
from .metrics import binarize

THRESHOLD_GRID = np.linspace(0.0, 1.0, 101)  # step 0.01; holds 0.5 exactly, so tuning never loses to it
SMOOTHING_WINDOWS = tuple(range(5, 26, 2))  # moving-average windows tried, in frames
_TIE_TOLERANCE = 1e-12
# An AU the model cannot see gets probabilities unrelated to its labels; the best threshold then sits near 0
# (predict present everywhere, F1 = 2r / (1 + r) at positive rate r), plus a chance gain that the margin covers
# (how it was chosen: docs/benchmarks.md, section 5, "Threshold guard").
GUARD_MARGIN = 0.02


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
    """Per-AU F1-maximising thresholds, the F1 (L,) each reaches, and the AUs (indices) set back to the default.

    Ties go to the threshold closest to `DEFAULT_THRESHOLD`. With a `margin`, an AU whose best F1 is not above
    the always-present F1 plus `margin` gets `DEFAULT_THRESHOLD` and its F1 there (`margin=None`: no guard).
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
            thresholds.append(DEFAULT_THRESHOLD)
            best_f1[index] = f1_from_counts(*_counts_over_grid(column, truth, np.array([DEFAULT_THRESHOLD])))[0]
        else:
            thresholds.append(float(round(grid[best], 6)))
            best_f1[index] = f1[best]
    return thresholds, best_f1, fell_back


def guarded_thresholds(
    probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] | None = None, margin: float | None = GUARD_MARGIN
) -> tuple[list[float], list[int]]:
    """`tune_thresholds` with the guard's `margin` (None: no guard), and the indices of the AUs it kept at
    `DEFAULT_THRESHOLD`."""
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
    against 1/0/-1 `labels` (N, L); ties go to the one closest to `DEFAULT_THRESHOLD` (0.5).

    Guard (`guard=True`): an AU whose best F1 is not above the F1 of predicting it present everywhere
    (`always_present_f1`) plus `margin` keeps `DEFAULT_THRESHOLD` -- the model shows no skill on it that a threshold
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
    windows: Iterable[int] = SMOOTHING_WINDOWS,
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


@dataclass(frozen=True)
class PostProcessing:
    """Tuned post-processing: the values stored as `config.smoothing_window` and `config.thresholds`, and the
    AUs (indices) whose threshold the guard kept at `DEFAULT_THRESHOLD`."""

    smoothing_window: int | None
    thresholds: list[float]
    fallback: list[int]


def tune_post_processing(
    probs: np.ndarray,
    labels: np.ndarray,
    video_ids: Sequence[str] | None = None,
    windows: Iterable[int] = SMOOTHING_WINDOWS,
    frames: Sequence[int] | None = None,
    guard: bool = True,
) -> PostProcessing:
    """Smoothing window (None without `video_ids` or when smoothing does not help) and per-AU thresholds
    tuned on the probabilities smoothed with it (`tune_thresholds`, guarded when `guard`)."""
    window = None
    if video_ids is not None:
        window = tune_smoothing_window(probs, labels, video_ids, windows, frames=frames, guard=guard)
    smoothed = smooth_probabilities(probs, video_ids, window, frames)
    thresholds, fallback = guarded_thresholds(smoothed, labels, margin=GUARD_MARGIN if guard else None)
    return PostProcessing(window, thresholds, fallback)
