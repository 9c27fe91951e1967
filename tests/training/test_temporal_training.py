"""Temporal training: train.py from a trained frame model, exact resume over clips, continuing a frame model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_MODEL_ARGS, TINY_TRAINING_ARGS, TRAINED_FOLDER_FILES
from datasets import load_from_disk
from safetensors.torch import load_file
from sklearn.metrics import f1_score
from tiny_au_data import AU_NAMES, write_tiny_dataset

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.data.transforms import AugmentationConfig, AugmentationEpochCallback, EpochState, EvalTransform
from modeling_au_mlt.hub.folder import image_processor_for
from modeling_au_mlt.training.arguments import parse_arguments
from modeling_au_mlt.training.run import run
from modeling_au_mlt.training.temporal import clip_training_dataset

COMMON = [*TINY_MODEL_ARGS, "--per_device_train_batch_size", "4", *TINY_TRAINING_ARGS]
TEMPORAL = ["--temporal_layers", "1", "--temporal_window", "4"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return write_tiny_dataset(
        tmp_path_factory.mktemp("data") / "tiny", train_videos=2, val_videos=2, frames=16, test_videos=2
    )


def train_in_process(dataset_dir: str, output_dir: Path, *extra: str) -> None:
    run(*parse_arguments(["--dataset_dir", dataset_dir, "--output_dir", str(output_dir), *COMMON, *extra]))


@pytest.fixture(scope="module")
def frame_model(dataset_dir, tmp_path_factory) -> Path:
    """A frame model trained for one epoch (8 steps)."""
    output_dir = tmp_path_factory.mktemp("frame") / "au-mlt"
    train_in_process(dataset_dir, output_dir, "--num_train_epochs", "1", "--save_strategy", "no")
    return output_dir


@pytest.fixture(scope="module")
def temporal_model(dataset_dir, frame_model, tmp_path_factory) -> Path:
    """scripts/train.py --init_from the frame model --temporal_layers 1 --temporal_window 4, one epoch."""
    output_dir = tmp_path_factory.mktemp("temporal") / "au-mlt"
    arguments = ["--dataset_dir", dataset_dir, "--output_dir", str(output_dir), "--init_from", str(frame_model)]
    arguments += ["--num_train_epochs", "1", "--save_strategy", "no"]
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), *arguments, *TEMPORAL, *COMMON],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| **mean** |" in completed.stdout
    return output_dir


def test_train_py_makes_a_complete_temporal_folder_from_a_frame_model(temporal_model):
    assert {path.name for path in temporal_model.iterdir() if path.is_file()} == TRAINED_FOLDER_FILES
    config = json.loads((temporal_model / "config.json").read_text())
    assert (config["temporal_layers"], config["temporal_window"]) == (1, 4)
    results = json.loads((temporal_model / "eval_results.json").read_text())
    for prefix in ("eval", "tuned", "test", "test_tuned"):
        assert 0.0 <= results[f"{prefix}_mean_f1"] <= 1.0 and f"{prefix}_f1_AU4" in results
    assert config["thresholds"] == [results["thresholds"][name] for name in AU_NAMES]
    assert config["smoothing_window"] == results["smoothing_window"]
    # 2 videos x 16 frames in clips of 4 every 2 frames: 14 clips, 4 steps of 4 clips
    assert json.loads((temporal_model / "trainer_state.json").read_text())["global_step"] == 4
    card = (temporal_model / "README.md").read_text()
    assert "1 temporal layer(s) over clips of up to 4 frames: each AU token attends to its own AU" in card
    assert "model.video_logits(model.frame_states(pixel_values))" in card and "one face track's frames" in card


def test_temporal_scores_are_the_sliding_window_scores_of_each_video(temporal_model, dataset_dir):
    # The per-row probabilities behind eval_results.json equal the model's own sequence scoring (video_logits).
    model = AUMLTModel.from_pretrained(temporal_model).eval()
    results = json.loads((temporal_model / "eval_results.json").read_text())
    split = load_from_disk(dataset_dir)["validation"]
    pixels = torch.stack(EvalTransform(image_processor_for(model.config))(split[:])["pixel_values"])
    videos, labels = np.array(split["video_id"]), np.array(split["labels"])
    probs = np.zeros(labels.shape)
    with torch.no_grad():
        for video in np.unique(videos):
            rows = np.flatnonzero(videos == video)  # frames 1..16 in row order
            probs[rows] = model.video_logits(model.frame_states(pixels[rows])).sigmoid().numpy()
    for index, name in enumerate(AU_NAMES):
        annotated = labels[:, index] != -1
        expected = f1_score(labels[annotated, index], probs[annotated, index] >= 0.5, zero_division=0.0)
        assert results[f"eval_f1_{name}"] == pytest.approx(expected, abs=1e-9), name


def test_resume_of_a_temporal_run_ends_with_bit_identical_weights(dataset_dir, frame_model, tmp_path, monkeypatch):
    # 14 training clips in 4-step epochs, with augmentation, label smoothing and dropout: resuming from step 3
    # crosses an epoch boundary.
    extra = ["--init_from", str(frame_model), *TEMPORAL, "--max_steps", "6", "--save_steps", "3"]
    extra += ["--label_smoothing", "0.1", "--test_split", ""]
    train_in_process(dataset_dir, tmp_path / "straight", *extra)

    class Interrupted(Exception):
        pass

    def stop_after_first_checkpoint(self, args, state, control, **kwargs):
        raise Interrupted(state.global_step)

    with monkeypatch.context() as patch:
        patch.setattr(AugmentationEpochCallback, "on_save", stop_after_first_checkpoint, raising=False)
        with pytest.raises(Interrupted):
            train_in_process(dataset_dir, tmp_path / "resumed", *extra)
    checkpoint = tmp_path / "resumed" / "checkpoint-3"
    train_in_process(dataset_dir, tmp_path / "resumed", *extra, "--resume_from_checkpoint", str(checkpoint))
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys() and any(name.startswith("temporal_layers.") for name in straight)
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


def test_init_from_with_no_temporal_layers_continues_the_frame_model(dataset_dir, frame_model, tmp_path, caplog):
    # With a zero learning rate the continued model's weights are the frame model's, bit for bit.
    extra = ["--init_from", str(frame_model), "--max_steps", "1", "--learning_rate", "0", "--decoder_layers", "3"]
    with caplog.at_level("WARNING", logger="modeling_au_mlt.training.temporal"):
        train_in_process(dataset_dir, tmp_path / "continued", *extra, "--test_split", "")
    assert f"--decoder_layers 3 ignored: the model of --init_from {frame_model} has decoder_layers=1" in caplog.text
    start = load_file(frame_model / "model.safetensors")
    continued = load_file(tmp_path / "continued" / "model.safetensors")
    assert start.keys() == continued.keys()
    for name, tensor in start.items():
        assert torch.equal(tensor, continued[name]), name


def test_init_from_refuses_other_starting_points_and_clips_refuse_mixup(dataset_dir, temporal_model, tmp_path):
    start = ["--init_from", str(temporal_model)]
    with pytest.raises(ValueError, match="holds a temporal model"):
        train_in_process(dataset_dir, tmp_path / "run", *start, "--temporal_layers", "2")
    with pytest.raises(ValueError, match="two starting points"):
        train_in_process(dataset_dir, tmp_path / "run", *start, "--encoder_name_or_path", "vit")
    model = AUMLTModel.from_pretrained(temporal_model)
    train = load_from_disk(dataset_dir)["train"]
    with pytest.raises(ValueError, match="mixup is not supported for clips"):
        clip_training_dataset(train, model.config, AugmentationConfig(mixup_alpha=0.4), 0, EpochState())
