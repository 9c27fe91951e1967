"""scripts/evaluate_model.py end to end: a tiny saved model on a tiny DatasetDict; JSON and PNGs checked
against probabilities computed here with a plain forward pass and scikit-learn."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config
from datasets import Dataset, DatasetDict
from PIL import Image
from reference_scores import sklearn_scores

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.data.arrow_shards import features_for
from modeling_au_mlt.evaluation.prediction import SplitPredictions
from modeling_au_mlt.evaluation.report import evaluation_report
from modeling_au_mlt.evaluation.tuning import smooth_probabilities
from modeling_au_mlt.hub.folder import image_processor_for, save_for_hub

NAMES = ["AU1", "AU2", "AU4"]
MODEL_THRESHOLDS = [0.45, 0.5, 0.55]
MODEL_WINDOW = 3


def tiny_split(rng: np.random.Generator, videos: int = 3, frames: int = 8) -> Dataset:
    """Random 32 px frames of a few videos, rows shuffled so that frame order must be restored."""
    rows = [(f"video{v}", f) for v in range(videos) for f in range(1, frames + 1)]
    order = rng.permutation(len(rows))
    labels = rng.integers(0, 2, (len(rows), len(NAMES))).astype(float)
    labels[rng.random(labels.shape) < 0.2] = -1
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in rows]
    return Dataset.from_dict(
        {
            "image": [images[i] for i in order],
            "labels": [labels[i].tolist() for i in order],
            "video_id": [rows[i][0] for i in order],
            "frame": [rows[i][1] for i in order],
        },
        features=features_for(NAMES),
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Save a tiny model and dataset, run the script once with --tune_thresholds."""
    folder = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(0)
    config = tiny_config(id2label=dict(enumerate(NAMES)), thresholds=MODEL_THRESHOLDS, smoothing_window=MODEL_WINDOW)
    model = AUMLTModel(config).eval()
    save_for_hub(model, folder / "model")
    dataset = DatasetDict({"validation": tiny_split(np.random.default_rng(0))})
    dataset.save_to_disk(folder / "data")
    return folder, model, dataset["validation"]


def reference_probabilities(model: AUMLTModel, split: Dataset) -> np.ndarray:
    """Probabilities from one plain forward pass over the whole split."""
    pixels = image_processor_for(model.config)(images=[row["image"] for row in split], return_tensors="pt")
    with torch.no_grad():
        return torch.sigmoid(model(pixels["pixel_values"]).logits).numpy()


def test_script_writes_report_and_figures_matching_sklearn(evaluated, script_runner):
    folder, model, split = evaluated
    output = folder / "out" / "report.json"
    completed = script_runner(
        "evaluate_model.py",
        "--model",
        folder / "model",
        "--dataset_dir",
        folder / "data",
        "--split",
        "validation",
        "--tune_thresholds",
        "--smoothing_windows",
        "3",
        "5",
        "--output_json",
        output,
        "--batch_size",
        "5",
    )
    report = json.loads(output.read_text())
    for name in ("report_f1.png", "report_pr_curves.png"):
        with Image.open(folder / "out" / name) as image:
            assert image.format == "PNG" and image.width > 100
    assert report["figures"] == {"f1_bar_chart": "report_f1.png", "pr_curves": "report_pr_curves.png"}
    assert sorted(p.name for p in (folder / "out").iterdir()) == [
        "report.json",
        "report_f1.png",
        "report_pr_curves.png",
    ]

    labels = np.array(split["labels"])
    probs = reference_probabilities(model, split)
    results = report["results"]
    assert report["num_frames"] == len(split) and report["label_names"] == NAMES
    assert results["threshold_0.5"]["scores"] == pytest.approx(sklearn_scores(probs >= 0.5, labels, NAMES), abs=1e-6)
    smoothed = smooth_probabilities(probs, split["video_id"], MODEL_WINDOW, split["frame"])
    assert results["model_config"]["smoothing_window"] == MODEL_WINDOW
    assert results["model_config"]["scores"] == pytest.approx(
        sklearn_scores(smoothed >= MODEL_THRESHOLDS, labels, NAMES), abs=1e-6
    )

    tuned = results["tuned"]
    assert tuned["smoothing_window"] in (None, 3, 5)
    tuned_probs = smooth_probabilities(probs, split["video_id"], tuned["smoothing_window"], split["frame"])
    assert tuned["scores"] == pytest.approx(
        sklearn_scores(tuned_probs >= tuned["thresholds"], labels, NAMES), abs=1e-6
    )
    assert tuned["scores"]["mean_f1"] >= results["threshold_0.5"]["scores"]["mean_f1"]
    assert f"{tuned['scores']['mean_f1']:.3f}" in completed.stdout and "AU4" in completed.stdout


def test_report_needs_labels_and_videos_where_used():
    probs = np.full((4, 1), 0.5, dtype=np.float32)
    with pytest.raises(ValueError, match="no `labels` column"):
        evaluation_report(SplitPredictions(probs, None, None, None), ["AU1"])
    with pytest.raises(ValueError, match="no `video_id` column"):
        evaluation_report(SplitPredictions(probs, np.ones((4, 1)), None, None), ["AU1"], model_window=3)
