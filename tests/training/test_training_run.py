"""train.py end to end on a tiny dataset: the Hub folder, its card, remote-code loading, exact resume, two ranks."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_MODEL_ARGS, TINY_TRAINING_ARGS, TRAINED_FOLDER_FILES
from datasets import DatasetDict
from huggingface_hub import ModelCard, metadata_load
from matplotlib import cbook
from safetensors.torch import load_file
from sklearn.metrics import f1_score
from tiny_au_data import AU_NAMES, tiny_split, write_tiny_dataset

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.data.transforms import AUCollator, AugmentationEpochCallback, EvalTransform
from modeling_au_mlt.evaluation.tuning import smooth_probabilities
from modeling_au_mlt.hub.folder import image_processor_for
from modeling_au_mlt.training.arguments import DEFAULT_JOB, DataArguments, parse_arguments
from modeling_au_mlt.training.run import run
from modeling_au_mlt.training.splits import load_splits, synthetic_cache_key, synthetic_dataset_dir

COMMON = [*TINY_MODEL_ARGS, "--per_device_train_batch_size", "8", *TINY_TRAINING_ARGS]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return write_tiny_dataset(
        tmp_path_factory.mktemp("data") / "tiny", train_videos=2, val_videos=2, frames=16, test_videos=2
    )


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory) -> Path:
    """One run of train.py (2 epochs, with a push that must fail offline)."""
    output_dir = tmp_path_factory.mktemp("run") / "au-mlt"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "train.py"),
            "--dataset_dir",
            dataset_dir,
            "--output_dir",
            str(output_dir),
            "--num_train_epochs",
            "2",
            "--save_strategy",
            "epoch",
            "--push_to_hub",
            "--hub_model_id",
            "org/au-mlt",
            "--hub_space_id",
            "org/au-mlt-demo",
            *COMMON,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode != 0, "the push cannot succeed offline"
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in completed.stderr, completed.stderr[-3000:]
    assert "| **mean** |" in completed.stdout  # the per-AU table was printed before the push
    return output_dir


def test_output_folder_holds_exactly_the_hub_files_and_checkpoints(trained):
    files = {path.name for path in trained.iterdir() if path.is_file()}
    folders = {path.name for path in trained.iterdir() if path.is_dir()}
    assert files == TRAINED_FOLDER_FILES
    assert folders == {"checkpoint-4", "checkpoint-8", "examples"}  # 32 rows / batch 8 = 4 steps per epoch
    assert json.loads((trained / "trainer_state.json").read_text())["global_step"] == 8


def probabilities_and_labels(model: AUMLTModel, split) -> tuple[np.ndarray, np.ndarray]:
    """The saved model's probabilities (N, L) and the labels (N, L) of a whole untransformed split."""
    batch = AUCollator()(list(split.with_transform(EvalTransform(image_processor_for(model.config)))))
    with torch.no_grad():
        return model(pixel_values=batch["pixel_values"]).logits.sigmoid().double().numpy(), batch["labels"].numpy()


def assert_f1_like_sklearn(results: dict, prefix: str, predicted: np.ndarray, labels: np.ndarray) -> None:
    """`<prefix>_f1_<AU>` and `<prefix>_mean_f1` of `results` equal scikit-learn's F1 on the annotated entries."""
    expected = []
    for index, name in enumerate(AU_NAMES):
        annotated = labels[:, index] != -1
        expected.append(f1_score(labels[annotated, index], predicted[annotated, index], zero_division=0.0))
        assert results[f"{prefix}_f1_{name}"] == pytest.approx(expected[-1], abs=1e-9), name
    assert results[f"{prefix}_mean_f1"] == pytest.approx(np.mean(expected), abs=1e-9)


def test_card_metadata_and_results_match_an_independent_scoring(trained, dataset_dir):
    results = json.loads((trained / "eval_results.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    assert config["thresholds"] == [results["thresholds"][name] for name in AU_NAMES]
    assert config["smoothing_window"] == results["smoothing_window"]
    assert set(results["threshold_fallback"]) <= set(AU_NAMES)
    assert all(results["thresholds"][name] == 0.5 for name in results["threshold_fallback"])
    # F1 recomputed with scikit-learn from the saved model's predictions (entries -1 left out): validation at
    # 0.5, and the test split at 0.5 and at the thresholds and window tuned on validation.
    from datasets import load_from_disk

    model = AUMLTModel.from_pretrained(trained).eval()
    splits = load_from_disk(dataset_dir)
    probs, labels = probabilities_and_labels(model, splits["validation"])
    assert_f1_like_sklearn(results, "eval", probs >= 0.5, labels)
    assert results["test_split"] == "test"
    probs, labels = probabilities_and_labels(model, splits["test"])
    assert_f1_like_sklearn(results, "test", probs >= 0.5, labels)
    window, thresholds = results["smoothing_window"], np.array([results["thresholds"][name] for name in AU_NAMES])
    smoothed = smooth_probabilities(probs, splits["test"]["video_id"], window, splits["test"]["frame"])
    assert_f1_like_sklearn(results, "test_tuned", smoothed >= thresholds, labels)
    # the card's YAML: library, task, tags and a model-index holding the scores just measured
    metadata = metadata_load(trained / "README.md")
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-classification"
    assert {"custom_code", "action-unit-detection"} <= set(metadata["tags"])
    # widget examples: the pictures in examples/, at their address in the repository pushed to
    hub_files = "https://huggingface.co/org/au-mlt/resolve/main/"
    widget_files = [entry["src"].removeprefix(hub_files) for entry in metadata["widget"]]
    assert widget_files == ["examples/grace_hopper.png", "examples/synthetic_face.png"]
    assert sorted(path.relative_to(trained).as_posix() for path in (trained / "examples").iterdir()) == widget_files
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert np.array_equal(cv2.imread(str(trained / "examples" / "grace_hopper.png")), hopper)  # lossless copy
    card = ModelCard.load(trained / "README.md")
    scores = {(result.dataset_split, result.metric_name): result.metric_value for result in card.data.eval_results}
    settings = {
        ("validation", "threshold 0.5"): "eval",
        ("validation", "tuned thresholds"): "tuned",
        ("test", "threshold 0.5"): "test",
        ("test", "thresholds tuned on validation"): "test_tuned",
    }
    assert len(scores) == len(settings) * (1 + len(AU_NAMES))
    for (split, setting), prefix in settings.items():
        assert scores[(split, f"mean F1 ({setting})")] == pytest.approx(results[f"{prefix}_mean_f1"], abs=1e-4)
        for name in AU_NAMES:
            assert scores[(split, f"F1 {name} ({setting})")] == pytest.approx(results[f"{prefix}_f1_{name}"], abs=1e-4)
    assert "org/au-mlt" in card.text and "trust_remote_code=True" in card.text and "Ethical" in card.text
    assert "| test F1 @0.5 | test F1 tuned |" in card.text and "test rows (test split): 32" in card.text
    assert f"| **{results['test_tuned_mean_f1']:.3f}** |" in card.text
    # the pipeline returns 5 labels unless asked for more (tests/hub checks it returns every AU with this top_k)
    assert f"trust_remote_code=True, top_k={len(AU_NAMES)})" in card.text
    assert "temporal layer" not in card.text and "face track" not in card.text  # a frame model's card
    assert "[org/au-mlt-demo](https://huggingface.co/spaces/org/au-mlt-demo)" in card.text
    assert "python demo/app.py --model org/au-mlt" in card.text
    assert "[Grace Hopper (real photo)](examples/grace_hopper.png)" in card.text


def test_training_tunes_what_evaluate_model_tunes_on_the_same_split(trained, dataset_dir, script_runner, tmp_path):
    # Training and scripts/evaluate_model.py both call `tune_post_processing`: same split, same settings.
    results = json.loads((trained / "eval_results.json").read_text())
    report_path = tmp_path / "report.json"
    arguments = ["--model", trained, "--dataset_dir", dataset_dir, "--split", "validation", "--tune_thresholds"]
    script_runner("evaluate_model.py", *arguments, "--output_json", report_path)
    tuned = json.loads(report_path.read_text())["results"]["tuned"]
    assert tuned["thresholds"] == [results["thresholds"][name] for name in AU_NAMES]
    assert tuned["smoothing_window"] == results["smoothing_window"]
    assert tuned["scores"]["mean_f1"] == pytest.approx(results["tuned_mean_f1"], abs=1e-9)


def test_saved_folder_loads_as_remote_code_without_the_package(trained, tmp_path):
    folder = tmp_path / "downloaded"
    shutil.copytree(trained, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    code = (
        "import sys; sys.modules['modeling_au_mlt'] = None\n"  # the package must not be importable
        "import numpy as np, torch\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        f"pixels = torch.from_numpy(np.load({str(tmp_path / 'pixels.npy')!r}))\n"
        f"np.save({str(tmp_path / 'logits.npy')!r}, model(pixel_values=pixels).logits.detach().numpy())\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with torch.no_grad():
        expected = AUMLTModel.from_pretrained(trained).eval()(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-5)


class Interrupted(Exception):
    pass


def train_in_process(dataset_dir: str, output_dir: Path, *extra: str) -> None:
    run(
        *parse_arguments(
            [
                "--dataset_dir",
                dataset_dir,
                "--output_dir",
                str(output_dir),
                "--max_steps",
                "7",
                "--save_steps",
                "3",
                "--mixup_alpha",
                "0.4",
                "--label_smoothing",
                "0.1",
                *COMMON,
                *extra,
            ]
        )
    )


def test_resume_after_a_checkpoint_ends_with_bit_identical_weights(dataset_dir, tmp_path, monkeypatch):
    # 7 steps over 4-step epochs with augmentation, mixup and decoder dropout: the resume from step 3
    # crosses an epoch boundary.
    train_in_process(dataset_dir, tmp_path / "straight")

    def stop_after_first_checkpoint(self, args, state, control, **kwargs):
        raise Interrupted(state.global_step)

    with monkeypatch.context() as patch:
        patch.setattr(AugmentationEpochCallback, "on_save", stop_after_first_checkpoint, raising=False)
        with pytest.raises(Interrupted):
            train_in_process(dataset_dir, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    train_in_process(
        dataset_dir, tmp_path / "resumed", "--resume_from_checkpoint", str(tmp_path / "resumed" / "checkpoint-3")
    )
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    losses = [
        json.loads((tmp_path / run_dir / "trainer_state.json").read_text())["log_history"]
        for run_dir in ("straight", "resumed")
    ]
    assert [entry["loss"] for entry in losses[0] if "loss" in entry][3:] == [
        entry["loss"] for entry in losses[1] if "loss" in entry
    ][-4:]


def test_an_au_without_positive_training_labels_trains_and_is_named_in_loss_weights_and_card(dataset_dir, tmp_path):
    from datasets import load_from_disk

    splits = load_from_disk(dataset_dir)
    no_au4 = splits["train"].map(
        lambda row: {"labels": row["labels"][:2] + [min(row["labels"][2], 0.0)]}, features=splits["train"].features
    )
    splits["train"] = no_au4
    splits.save_to_disk(str(tmp_path / "data"))
    run(
        *parse_arguments(
            [
                "--dataset_dir",
                str(tmp_path / "data"),
                "--output_dir",
                str(tmp_path / "run"),
                "--max_steps",
                "1",
                "--save_strategy",
                "no",
                *COMMON,
            ]
        )
    )
    report = json.loads((tmp_path / "run" / "loss_weights.json").read_text())
    labels = np.array(no_au4["labels"])
    inverse = [(labels[:, k] != -1).sum() / (labels[:, k] == 1).sum() for k in (0, 1)]
    inverse.append(min(inverse))  # AU4 is weighted like the most frequent AU
    expected = 3 * np.array(inverse) / sum(inverse)
    assert report["no_positive"] == ["AU4"]
    np.testing.assert_allclose([report["weights"][name] for name in AU_NAMES], expected, rtol=1e-6)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "No positive training label for AU4: trained on negatives only" in card


def make_split_folder(path: Path, test) -> str:
    """A train/validation DatasetDict on disk with `test` (a Dataset) as its `test` split."""
    splits = {"train": tiny_split(1, 4, 0, "train"), "validation": tiny_split(1, 4, 1, "validation"), "test": test}
    DatasetDict(splits).save_to_disk(str(path))
    return str(path)


def test_the_test_split_is_loaded_capped_and_left_out_when_unlabelled_or_reused(tmp_path, caplog):
    labelled = make_split_folder(tmp_path / "labelled", tiny_split(2, 4, 2, "test"))
    splits = load_splits(DataArguments(dataset_dir=labelled, max_eval_samples=3), None)
    assert sorted(splits) == ["eval", "test", "train"]
    assert list(zip(splits["test"]["video_id"], splits["test"]["frame"])) == [("test0", 1), ("test0", 2), ("test0", 3)]
    assert "test" not in load_splits(DataArguments(dataset_dir=labelled, test_split=""), None)
    with caplog.at_level("WARNING", logger="modeling_au_mlt.training.splits"):
        reused = load_splits(DataArguments(dataset_dir=labelled, eval_split="test"), None)
        unlabelled = make_split_folder(tmp_path / "unlabelled", tiny_split(1, 4, 3, "test", unannotated=1.0))
        assert "test" not in load_splits(DataArguments(dataset_dir=unlabelled), None)
    assert sorted(reused) == ["eval", "train"] and len(reused["eval"]) == 8
    assert "--test_split 'test' is also the train or evaluation split" in caplog.text
    assert "split 'test' has no annotated label: not scored" in caplog.text


def test_synthetic_job_data_has_a_test_split_of_other_videos_and_is_cached_by_its_size(tmp_path):
    from datasets import load_from_disk

    sizes = dict(
        synthetic_train_videos=2, synthetic_val_videos=1, synthetic_frames_per_video=3, synthetic_image_size=32
    )
    data_args = DataArguments(cache_dir=str(tmp_path), synthetic_test_videos=2, **sizes)
    folder = synthetic_dataset_dir(data_args)
    splits = load_from_disk(str(folder))
    videos = {split: set(splits[split]["video_id"]) for split in ("train", "validation", "test")}
    assert len(videos["test"]) == 2 and not videos["test"] & (videos["train"] | videos["validation"])
    assert synthetic_dataset_dir(data_args) == folder  # generated once, then read from the cache
    assert synthetic_cache_key(DataArguments(synthetic_test_videos=3, **sizes)) != synthetic_cache_key(data_args)


def test_default_job_is_used_only_without_a_dataset_argument(tmp_path):
    model_args, data_args, training_args = parse_arguments(["--learning_rate", "0.01"])
    assert training_args.learning_rate == 0.01 and data_args.image_size == DEFAULT_JOB["image_size"]
    assert data_args.dataset_dir is None and training_args.output_dir == DEFAULT_JOB["output_dir"]
    assert model_args.patch_size == DEFAULT_JOB["patch_size"]
    _, data_args, training_args = parse_arguments(["--dataset_dir", "d", "--output_dir", "o"])
    assert data_args.dataset_dir == "d" and training_args.output_dir == "o" and training_args.num_train_epochs == 3.0
    (tmp_path / "args.yaml").write_text("dataset_dir: d\noutput_dir: o\nlearning_rate: 0.002\nvision_preset: small\n")
    model_args, data_args, training_args = parse_arguments([str(tmp_path / "args.yaml")])
    assert (model_args.vision_preset, data_args.dataset_dir, training_args.learning_rate) == ("small", "d", 0.002)
    assert not training_args.remove_unused_columns and training_args.batch_eval_metrics


def test_two_cpu_ranks_take_half_the_optimizer_steps_per_epoch(dataset_dir, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    arguments = ["--dataset_dir", dataset_dir, "--num_train_epochs", "1", "--save_strategy", "no", *COMMON]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    completed = subprocess.run(
        [*launch, str(REPO_ROOT / "scripts" / "train.py"), *arguments, "--output_dir", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    run(*parse_arguments([*arguments, "--output_dir", str(tmp_path / "one")]))
    steps = {
        ranks: json.loads((tmp_path / ranks / "trainer_state.json").read_text())["global_step"]
        for ranks in ("one", "two")
    }
    assert steps == {"one": 4, "two": 2}  # 32 rows, batch 8 per process
