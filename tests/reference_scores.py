"""Independent truth for the scoring tests: scikit-learn's per-AU scores on the annotated entries, and random
probabilities loosely tied to random 1/0/-1 labels."""

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score


def random_split(rng: np.random.Generator, frames: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (frames, 4) loosely tied to 1/0/-1 labels (frames, 4); the fourth AU is never present."""
    labels = (rng.random((frames, 4)) < [0.3, 0.1, 0.5, 0.0]).astype(np.float32)
    probs = np.clip(0.35 * labels + rng.random(labels.shape) * 0.7, 0, 1)
    labels[rng.random(labels.shape) < 0.2] = -1
    return probs, labels


def sklearn_scores(predictions: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict[str, float]:
    """Per-AU F1 / precision / recall of scikit-learn on the entries whose label is not -1, and the mean F1."""
    scores = {}
    for index, name in enumerate(label_names):
        annotated = labels[:, index] != -1
        truth, predicted = labels[annotated, index], predictions[annotated, index]
        scores[f"f1_{name}"] = f1_score(truth, predicted, zero_division=0)
        scores[f"precision_{name}"] = precision_score(truth, predicted, zero_division=0)
        scores[f"recall_{name}"] = recall_score(truth, predicted, zero_division=0)
    scores["mean_f1"] = float(np.mean([scores[f"f1_{name}"] for name in label_names]))
    return scores
