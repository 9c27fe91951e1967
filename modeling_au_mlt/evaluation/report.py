"""Evaluation report of a model on a split: scores at the default threshold (0.5), with the model's own
post-processing, and tuned (per-AU thresholds and the video smoothing window, `tuning.tune_post_processing`);
a table for printing, saved as JSON and PNGs.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic_io import write_json
from ..configuration_au_mlt import DEFAULT_THRESHOLD, NOT_ANNOTATED
from .metrics import au_scores
from .plots import f1_bar_chart, pr_curves
from .prediction import SplitPredictions
from .tuning import SMOOTHING_WINDOWS, smooth_probabilities, tune_post_processing

DEFAULT_SECTION = f"threshold_{DEFAULT_THRESHOLD}"
SECTION_TITLES = {DEFAULT_SECTION: f"at {DEFAULT_THRESHOLD}", "model_config": "model cfg", "tuned": "tuned"}


def _section(predictions: SplitPredictions, label_names, thresholds, window: int | None) -> dict:
    """Scores of one post-processing setting (thresholds + smoothing window)."""
    probs = predictions.probabilities
    if window is not None:
        probs = smooth_probabilities(probs, predictions.video_ids, window, predictions.frames)
    return {
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "smoothing_window": window,
        "scores": au_scores(probs, predictions.labels, thresholds, label_names),
    }


def _tuned_section(predictions: SplitPredictions, label_names, windows: Sequence[int]) -> dict:
    """Window (when the split has videos) and thresholds tuned on this split, and their scores."""
    tuned = tune_post_processing(
        predictions.probabilities, predictions.labels, predictions.video_ids, windows, predictions.frames
    )
    return _section(predictions, label_names, tuned.thresholds, tuned.smoothing_window)


def evaluation_report(
    predictions: SplitPredictions,
    label_names: Sequence[str],
    model_thresholds: Sequence[float] | None = None,
    model_window: int | None = None,
    tune: bool = False,
    windows: Sequence[int] = SMOOTHING_WINDOWS,
) -> dict:
    """Scores of `predictions` at `DEFAULT_THRESHOLD`, with the model's stored post-processing (when it has
    any), and tuned on this split (when `tune`); plus per-AU annotated and positive frame counts."""
    if predictions.labels is None:
        raise ValueError("the split has no `labels` column: nothing to score against")
    labels = predictions.labels
    if model_window is not None and predictions.video_ids is None:
        raise ValueError("the model smooths over videos (smoothing_window) but the split has no `video_id` column")
    results = {DEFAULT_SECTION: _section(predictions, label_names, None, None)}
    if model_thresholds is not None or model_window is not None:
        results["model_config"] = _section(predictions, label_names, model_thresholds, model_window)
    if tune:
        results["tuned"] = _tuned_section(predictions, label_names, windows)
    return {
        "num_frames": int(len(labels)),
        "label_names": list(label_names),
        "annotated_frames": dict(zip(label_names, (labels != NOT_ANNOTATED).sum(axis=0).tolist())),
        "positive_frames": dict(zip(label_names, (labels == 1).sum(axis=0).tolist())),
        "results": results,
    }


def report_table(report: dict) -> str:
    """Per-AU table: positives, then F1 / precision / recall of every result section, and the mean."""
    sections = report["results"]
    header = f"{'AU':<8}{'pos':>8}" + "".join(
        f"{SECTION_TITLES[name] + ' F1':>17}{'P':>7}{'R':>7}" for name in sections
    )
    lines = [header, "-" * len(header)]
    for name in report["label_names"]:
        cells = "".join(
            f"{section['scores'][f'f1_{name}']:>17.3f}{section['scores'][f'precision_{name}']:>7.3f}"
            f"{section['scores'][f'recall_{name}']:>7.3f}"
            for section in sections.values()
        )
        lines.append(f"{name:<8}{report['positive_frames'][name]:>8}{cells}")
    means = "".join(f"{section['scores']['mean_f1']:>17.3f}{'':>14}" for section in sections.values())
    lines += ["-" * len(header), f"{'mean':<8}{report['num_frames']:>8}{means}"]
    for name, section in sections.items():
        if section["thresholds"] is not None or section["smoothing_window"] is not None:
            thresholds = section["thresholds"]
            thresholds = str(DEFAULT_THRESHOLD) if thresholds is None else " ".join(f"{t:.2f}" for t in thresholds)
            lines.append(f"{name}: thresholds {thresholds}; smoothing window {section['smoothing_window']}")
    return "\n".join(lines)


def figure_paths(json_path: str | Path) -> dict[str, Path]:
    """The PNGs written next to the report JSON `<stem>.json`: `<stem>_f1.png`, `<stem>_pr_curves.png`."""
    json_path = Path(json_path)
    return {
        "f1_bar_chart": json_path.with_name(f"{json_path.stem}_f1.png"),
        "pr_curves": json_path.with_name(f"{json_path.stem}_pr_curves.png"),
    }


def write_report(report: dict, predictions: SplitPredictions, json_path: str | Path) -> dict[str, Path]:
    """Draw the figures, then write the JSON (it names the figures) last, each file atomically."""
    paths = figure_paths(json_path)
    sections = report["results"]
    names = report["label_names"]
    f1_bar_chart(
        names, sections[DEFAULT_SECTION]["scores"], paths["f1_bar_chart"], sections.get("tuned", {}).get("scores")
    )
    points = {SECTION_TITLES[name]: section["scores"] for name, section in sections.items()}
    pr_curves(np.asarray(predictions.probabilities), predictions.labels, names, paths["pr_curves"], points)
    write_json(json_path, report | {"figures": {key: path.name for key, path in paths.items()}})
    return {"json": Path(json_path), **paths}
