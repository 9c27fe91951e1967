"""ABAW Action Unit F1: per-AU F1 with TP/FP/FN pooled over every frame of the split, and their mean.

A local `evaluate` module; it loads offline by path (`evaluate.load("path/to/au_f1")`). Its helper
functions `pooled_counts`, `f1_from_counts` and `scores_from_counts` are importable too, so that a streaming
accumulator can pool counts batch by batch and score them exactly as this module does.
"""

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

# Reference value of an entry nobody annotated. `evaluate.load` runs this file alone, so it cannot import the
# package's `configuration_au_mlt.NOT_ANNOTATED`; a test checks that both are equal.
NOT_ANNOTATED = -1

_DESCRIPTION = """
Per-label F1 of multi-label binary predictions, the metric of the ABAW Action Unit detection track:
true positives, false positives and false negatives of each AU are pooled over all frames of all videos
of the split, F1 is computed per AU, and `mean_f1` is the plain mean over AUs. Reference entries equal
to -1 (not annotated) are ignored. An AU whose precision, recall or F1 is undefined (0 / 0) scores 0,
as scikit-learn does.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): 0/1 per frame and AU, shape (frames, AUs).
    references (`list[list[int]]`): 1 present, 0 absent, -1 not annotated (ignored), same shape.
    label_names (`list[str]`, *optional*): one name per AU, used in the output keys; defaults to
        `label_0`, `label_1`, ...
Returns:
    `mean_f1`, and per AU `f1_<name>`, `precision_<name>`, `recall_<name>`.
Examples:
    >>> metric = evaluate.load("modeling_au_mlt/evaluation/au_f1")
    >>> metric.compute(predictions=[[1, 0], [1, 1]], references=[[1, -1], [0, 1]], label_names=["AU1", "AU2"])
    {'mean_f1': 0.8333333333333333, 'f1_AU1': 0.6666666666666666, 'precision_AU1': 0.5, 'recall_AU1': 1.0, 'f1_AU2': 1.0, 'precision_AU2': 1.0, 'recall_AU2': 1.0}
"""

_CITATION = """
@inproceedings{kollias2022abaw,
  title={ABAW: Valence-Arousal Estimation, Expression Recognition, Action Unit Detection & Multi-Task Learning Challenges},
  author={Kollias, Dimitrios},
  booktitle={CVPR Workshops},
  year={2022}
}
"""


def check_references(references: np.ndarray) -> None:
    """Raise `ValueError` unless every entry is 1, 0 or -1 (soft labels cannot be scored)."""
    if not np.isin(references, (NOT_ANNOTATED, 0, 1)).all():
        raise ValueError("references: every entry must be 1, 0 or -1 (not annotated)")


def pooled_counts(predictions: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN per AU (each shape (L,)) of 0/1 `predictions` against 0/1/-1 `references` (N, L)."""
    predictions = np.asarray(predictions)
    references = np.asarray(references)
    if predictions.shape != references.shape or predictions.ndim != 2:
        raise ValueError(
            f"predictions {predictions.shape} and references {references.shape} must both be (frames, AUs)"
        )
    if not np.isin(predictions, (0, 1)).all():
        raise ValueError("predictions: every entry must be 0 or 1 (threshold the probabilities first)")
    check_references(references)
    annotated = references != NOT_ANNOTATED  # (N, L)
    predicted = (predictions == 1) & annotated
    present = references == 1
    true_positives = (predicted & present).sum(axis=0)
    false_positives = (predicted & ~present).sum(axis=0)
    false_negatives = (~predicted & present).sum(axis=0)
    return true_positives, false_positives, false_negatives


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def f1_from_counts(true_positives: np.ndarray, false_positives: np.ndarray, false_negatives: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN), elementwise; 0 where nothing is present or predicted."""
    true_positives = np.asarray(true_positives)
    return _ratio(2 * true_positives, 2 * true_positives + np.asarray(false_positives) + false_negatives)


def scores_from_counts(
    true_positives: np.ndarray,
    false_positives: np.ndarray,
    false_negatives: np.ndarray,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """`mean_f1` and per-AU `f1_`, `precision_`, `recall_` from pooled counts (each shape (L,))."""
    count = len(true_positives)
    label_names = list(label_names) if label_names is not None else [f"label_{index}" for index in range(count)]
    if len(label_names) != count:
        raise ValueError(f"label_names: expected {count} names, one per AU, got {len(label_names)}")
    precision = _ratio(true_positives, np.add(true_positives, false_positives))
    recall = _ratio(true_positives, np.add(true_positives, false_negatives))
    f1 = f1_from_counts(true_positives, false_positives, false_negatives)
    scores = {"mean_f1": float(f1.mean())}
    for index, name in enumerate(label_names):
        scores[f"f1_{name}"] = float(f1[index])
        scores[f"precision_{name}"] = float(precision[index])
        scores[f"recall_{name}"] = float(recall[index])
    return scores


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AuF1(evaluate.Metric):
    """ABAW AU F1 (pooled over frames) as an `evaluate` metric."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references, label_names: Sequence[str] | None = None) -> dict[str, float]:
        return scores_from_counts(*pooled_counts(predictions, references), label_names=label_names)
