"""Figures of an evaluation: per-AU F1 bar chart (default threshold vs tuned) and precision-recall curves.

Figures are drawn on matplotlib's Agg canvas (no display needed) and written atomically as PNG.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from ..atomic_io import save_figure
from ..configuration_au_mlt import DEFAULT_THRESHOLD, NOT_ANNOTATED

_COLUMNS = 4


def f1_bar_chart(
    label_names: Sequence[str], default_scores: dict[str, float], path: str | Path, tuned_scores: dict | None = None
) -> Path:
    """Bar chart of per-AU F1 at `DEFAULT_THRESHOLD` (and with tuned post-processing when given) at `path`."""
    series = {f"threshold {DEFAULT_THRESHOLD}": default_scores} | ({"tuned": tuned_scores} if tuned_scores else {})
    positions = np.arange(len(label_names))
    width = 0.8 / len(series)
    figure = Figure(figsize=(max(6.0, 0.7 * len(label_names)), 4.0))
    axes = figure.add_subplot()
    for offset, (name, scores) in enumerate(series.items()):
        heights = [scores[f"f1_{label}"] for label in label_names]
        shift = (offset - (len(series) - 1) / 2) * width
        axes.bar(positions + shift, heights, width, label=f"{name} (mean {scores['mean_f1']:.3f})")
    axes.set_xticks(positions, list(label_names))
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("F1")
    axes.set_title("Per-AU F1")
    axes.legend(loc="upper right")
    return save_figure(figure, path, bbox_inches="tight")


def pr_curves(
    probs: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path: str | Path,
    operating_points: dict[str, dict[str, float]],
) -> Path:
    """One precision-recall curve per AU of `probs` (annotated frames only) at `path`, with the points
    of `operating_points` (name -> scores with `precision_<AU>` / `recall_<AU>`, e.g. the default and tuned)."""
    rows = math.ceil(len(label_names) / _COLUMNS)
    columns = min(len(label_names), _COLUMNS)
    figure = Figure(figsize=(3.0 * columns, 3.0 * rows))
    for index, name in enumerate(label_names):
        axes = figure.add_subplot(rows, columns, index + 1)
        annotated = labels[:, index] != NOT_ANNOTATED
        truth = labels[annotated, index] == 1
        axes.set_title(name)
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.05)
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        if not truth.any():
            axes.text(0.5, 0.5, "no positive frame", ha="center", va="center")
            continue
        precision, recall, _ = precision_recall_curve(truth, probs[annotated, index])
        axes.plot(recall, precision)
        for marker, (point, scores) in zip("osd^", operating_points.items()):
            axes.plot(scores[f"recall_{name}"], scores[f"precision_{name}"], marker, label=point)
        axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    return save_figure(figure, path, bbox_inches="tight")
