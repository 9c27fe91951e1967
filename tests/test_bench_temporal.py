"""The temporal benchmark's helpers: equal compute, nuisance masks, the test video, speed, the timeline figure.

The benchmark itself trains five models (about an hour); its numbers are in docs/benchmarks.md.
"""

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_config
from datasets import Dataset
from PIL import Image

from benchmarks import bench_temporal
from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.hub.folder import save_for_hub


def test_equal_compute_epochs_match_the_frames_of_the_clip_epochs():
    # 2 clip epochs of 1,900 frames = 3,800 frames = 3.8 epochs of 1,000 rows.
    assert bench_temporal.equal_compute_epochs(2.0, 1900, 1000) == pytest.approx(3.8)


def test_nuisance_masks_join_videos_and_frames():
    document = {
        "videos": {"v1": {"2": ["motion_blur"], "3": ["motion_blur", "heavy_jpeg"]}, "v2": {"1": ["occlusion"]}}
    }
    masks = bench_temporal.nuisance_masks(
        np.array(["v1", "v1", "v1", "v2", "v2"]), np.array([1, 2, 3, 1, 2]), document
    )
    assert masks["motion_blur"].tolist() == [False, True, True, False, False]
    assert masks["heavy_jpeg"].tolist() == [False, False, True, False, False]
    assert masks["occlusion"].tolist() == [False, False, False, True, False]
    assert masks["none"].tolist() == [True, False, False, False, True]
    assert not masks["head_turn"].any()


def test_scores_by_nuisance_scores_each_mask_alone():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.7, 0.2]])
    masks = {"first": np.array([True, True, False, False]), "rest": np.array([False, False, True, True])}
    scores = bench_temporal.scores_by_nuisance(probs, labels, masks, None, ["AU1", "AU2"])
    # first rows: AU1 TP, FN -> F1 2/3; AU2 TN, TP -> 1. rest: AU1 FP -> 0; AU2 TP -> 1.
    assert scores["first"] == {"rows": 2, "mean_f1": pytest.approx((2 / 3 + 1) / 2)}
    assert scores["rest"] == {"rows": 2, "mean_f1": pytest.approx(0.5)}


@pytest.fixture(scope="module")
def video_split():
    frames = [3, 1, 2, 5, 4]
    return Dataset.from_dict(
        {
            "image": [Image.fromarray(np.full((32, 32, 3), 40 * frame, np.uint8)) for frame in frames],
            "labels": [[0.0] * 12 for _ in frames],
            "video_id": ["a"] * 5,
            "frame": frames,
        }
    )


def test_test_video_writes_the_frames_in_order(video_split, tmp_path):
    split = video_split
    path = bench_temporal.test_video(split, ["a"], tmp_path / "a.mp4")
    capture = cv2.VideoCapture(str(path))
    means = []
    while (read := capture.read())[0]:
        means.append(read[1].mean())
    assert len(means) == 5 and means == sorted(means)  # brighter with every frame number


def test_prediction_speed_runs_each_model(video_split, tmp_path):
    split = video_split
    torch.manual_seed(0)
    frame = AUMLTModel(tiny_config())
    folders = {
        "frame": save_for_hub(frame, tmp_path / "frame"),
        "temporal": save_for_hub(
            AUMLTModel.from_frame_model(frame, temporal_layers=1, temporal_window=4), tmp_path / "t"
        ),
    }
    speed = bench_temporal.prediction_speed(folders, bench_temporal.test_video(split, ["a"], tmp_path / "a.mp4"), 1)
    assert set(speed) == {"frame", "temporal"} and all(row["frames_per_second"] > 0 for row in speed.values())


def test_timeline_figure_is_written(tmp_path):
    labels = np.array([[1, 0], [1, -1], [0, 1]], dtype=float)
    curves = {"frame": np.full((3, 2), 0.4), "temporal": np.full((3, 2), 0.6)}
    nuisances = {2: ["occlusion", "heavy_jpeg"]}
    bench_temporal.timeline_figure(tmp_path / "t.png", "a", np.arange(1, 4), labels, curves, ["AU1", "AU2"], nuisances)
    assert (tmp_path / "t.png").stat().st_size > 1000
