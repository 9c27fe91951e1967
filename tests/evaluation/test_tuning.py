"""Threshold and smoothing-window tuning against scikit-learn and direct re-computations."""

import numpy as np
import pytest
from reference_scores import random_split
from sklearn.metrics import f1_score

from modeling_au_mlt.evaluation.metrics import au_scores
from modeling_au_mlt.evaluation.tuning import (
    GUARD_MARGIN,
    THRESHOLD_GRID,
    always_present_f1,
    guarded_thresholds,
    smooth_probabilities,
    tune_post_processing,
    tune_smoothing_window,
    tune_thresholds,
)

NAMES = ["AU1", "AU2", "AU4", "AU6"]


def grid_best_by_sklearn(probs: np.ndarray, labels: np.ndarray, index: int) -> float:
    """Best F1 of one AU over the threshold grid, each point scored by scikit-learn."""
    annotated = labels[:, index] != -1
    truth, scores = labels[annotated, index], probs[annotated, index]
    return max(f1_score(truth, scores >= t, zero_division=0) for t in THRESHOLD_GRID)


def test_tuned_thresholds_reach_the_grid_optimum_and_never_lose_to_half():
    probs, labels = random_split(np.random.default_rng(6))
    thresholds = tune_thresholds(probs, labels, guard=False)
    assert tune_thresholds(probs, labels) == thresholds  # informative AUs: the guard changes nothing here
    tuned = au_scores(probs, labels, thresholds, NAMES)
    assert tuned["mean_f1"] >= au_scores(probs, labels, None, NAMES)["mean_f1"]
    for index, name in enumerate(NAMES):
        assert tuned[f"f1_{name}"] == pytest.approx(grid_best_by_sklearn(probs, labels, index), abs=1e-12)
    assert thresholds[3] == 0.5  # no positive: every threshold ties at F1 0, the tie goes to 0.5


def test_threshold_ties_go_to_the_one_closest_to_half():
    probs = np.array([[0.1], [0.2], [0.8], [0.9]])
    labels = np.array([[0], [0], [1], [1]])  # every threshold in (0.2, 0.8] is perfect
    assert tune_thresholds(probs, labels) == [0.5]
    assert tune_thresholds(probs, labels, grid=[0.0, 0.25, 0.7, 1.0]) == [0.7]


def test_guard_keeps_half_for_an_uninformative_au_and_the_tuned_threshold_for_an_informative_one():
    rng = np.random.default_rng(10)
    labels = (rng.random((2000, 2)) < 0.2).astype(np.float32)
    blind = rng.random(2000)  # AU1: probabilities independent of its labels
    seeing = np.clip(0.1 + 0.2 * labels[:, 1] + rng.normal(0, 0.05, 2000), 0, 1)  # AU2: informative, low
    probs = np.stack([blind, seeing], axis=1)
    labels[rng.random(labels.shape) < 0.05] = -1
    plain = tune_thresholds(probs, labels, guard=False)
    annotated = labels[:, 0] != -1
    truth = labels[annotated, 0]
    present = f1_score(truth, np.ones_like(truth))  # predict present everywhere
    assert present == pytest.approx(2 * truth.mean() / (1 + truth.mean()))
    np.testing.assert_allclose(always_present_f1(labels)[0], present, rtol=1e-12)
    blind_f1 = f1_score(truth, probs[annotated, 0] >= plain[0])
    assert plain[0] < 0.2 and present <= blind_f1 <= present + GUARD_MARGIN  # the near-0 threshold of the issue
    assert 0.15 < plain[1] < 0.3
    assert guarded_thresholds(probs, labels) == ([0.5, plain[1]], [0])
    assert tune_thresholds(probs, labels) == [0.5, plain[1]]


def test_guard_margin_is_a_strict_improvement_over_always_present():
    probs = np.array([[0.3], [0.2], [0.1], [0.05]])
    labels = np.array([[1], [0], [0], [0]])  # always present: F1 = 2 / (2 + 3) = 0.4; best: 1.0 for t in (0.2, 0.3]
    assert guarded_thresholds(probs, labels, margin=0.5) == ([0.3], [])
    assert guarded_thresholds(probs, labels, margin=0.7) == ([0.5], [0])
    assert guarded_thresholds(probs, labels, margin=None) == ([0.3], [])


def naive_smoothing(probs, video_ids, frames, window):
    """Mean over same-video rows whose frame rank lies within the centred window: one row at a time."""
    result = np.empty_like(probs, dtype=np.float64)
    for row in range(len(probs)):
        same = [other for other in range(len(probs)) if video_ids[other] == video_ids[row]]
        same.sort(key=lambda other: frames[other])
        rank = same.index(row)
        members = same[max(0, rank - (window - 1) // 2) : rank + window // 2 + 1]
        result[row] = probs[members].mean(axis=0)
    return result


@pytest.mark.parametrize("window", [1, 2, 3, 5, 9])
def test_smoothing_matches_naive_per_video_average_on_shuffled_rows(window):
    rng = np.random.default_rng(7)
    video_ids = np.array(["b"] * 7 + ["a"] * 12 + ["c"] * 1)
    frames = np.concatenate([np.arange(1, 8), np.arange(1, 13) * 2, [5]])
    shuffle = rng.permutation(len(video_ids))
    probs = rng.random((len(video_ids), 3))
    video_ids, frames, probs = video_ids[shuffle], frames[shuffle], probs[shuffle]
    np.testing.assert_allclose(
        smooth_probabilities(probs, video_ids, window, frames), naive_smoothing(probs, video_ids, frames, window)
    )
    ordered = np.argsort(frames, kind="stable")  # without frames, the row order is the time order
    np.testing.assert_allclose(
        smooth_probabilities(probs[ordered], video_ids[ordered], window),
        naive_smoothing(probs[ordered], video_ids[ordered], np.arange(len(frames)), window),
    )


def test_smoothing_rejects_bad_windows_and_lengths():
    with pytest.raises(ValueError, match="window"):
        smooth_probabilities(np.zeros((3, 1)), ["a"] * 3, 0)
    with pytest.raises(ValueError, match="one entry per row"):
        smooth_probabilities(np.zeros((3, 1)), ["a"] * 2, 3)
    np.testing.assert_array_equal(smooth_probabilities(np.eye(3), None, None), np.eye(3))


def test_window_is_chosen_when_smoothing_helps_and_none_otherwise():
    rng = np.random.default_rng(8)
    segments = np.repeat(rng.integers(0, 2, (40, 2)), 30, axis=0).astype(float)  # 30-frame events
    video_ids = np.repeat([f"v{index}" for index in range(8)], 150)
    noisy = np.clip(0.5 * segments + 0.25 + rng.normal(0, 0.25, segments.shape), 0, 1)
    window = tune_smoothing_window(noisy, segments, video_ids, thresholds=[0.5, 0.5])
    assert window is not None and window >= 5
    smoothed = smooth_probabilities(noisy, video_ids, window)
    assert (
        au_scores(smoothed, segments, None, NAMES[:2])["mean_f1"]
        > au_scores(noisy, segments, None, NAMES[:2])["mean_f1"]
    )
    flicker = np.tile([[1.0], [0.0]], (300, 1))  # the AU changes every frame: averaging can only hurt
    assert tune_smoothing_window(flicker * 0.8 + 0.1, flicker, np.repeat(["v"], 600)) is None


def test_soft_labels_are_rejected_not_truncated():
    soft = np.array([[0.9], [0.1]])  # e.g. label smoothing leaking into evaluation
    with pytest.raises(ValueError, match="references: every entry must be 1, 0 or -1"):
        tune_thresholds(np.array([[0.9], [0.2]]), soft)


def test_post_processing_tunes_thresholds_on_the_smoothed_probabilities():
    rng = np.random.default_rng(9)
    segments = np.repeat(rng.integers(0, 2, (20, 2)), 30, axis=0).astype(float)
    video_ids = np.repeat(["a", "b", "c"], 200)
    noisy = np.clip(0.4 * segments + 0.2 + rng.normal(0, 0.25, segments.shape), 0, 1)
    tuned = tune_post_processing(noisy, segments, video_ids)
    window = tuned.smoothing_window
    assert window == tune_smoothing_window(noisy, segments, video_ids) and window is not None
    assert tuned.thresholds == tune_thresholds(smooth_probabilities(noisy, video_ids, window), segments)
    assert tuned.fallback == guarded_thresholds(smooth_probabilities(noisy, video_ids, window), segments)[1]
    unsmoothed = tune_post_processing(noisy, segments)
    assert (unsmoothed.smoothing_window, unsmoothed.thresholds) == (None, tune_thresholds(noisy, segments))
