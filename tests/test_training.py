"""train.py end to end on a tiny dataset: the Hub folder, its card, remote-code loading, exact resume, two ranks."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, metadata_load
from safetensors.torch import load_file
from sklearn.metrics import f1_score
from tiny_au_data import AU_NAMES, TINY_MODEL_ARGS, write_tiny_dataset

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.hub import HANDLER_FILE, image_processor_for
from modeling_au_mlt.training import run
from modeling_au_mlt.training_args import DEFAULT_JOB, parse_arguments
from modeling_au_mlt.transforms import AugmentationEpochCallback, AUCollator, EvalTransform

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_FOLDER_FILES = {
    "README.md", "config.json", "configuration_au_mlt.py", "modeling_au_mlt.py", "model.safetensors",
    "preprocessor_config.json", "eval_results.json", "trainer_state.json", "loss_weights.json",
} | ({"handler.py"} if HANDLER_FILE.exists() else set())  # save_for_hub ships the endpoint handler when present
COMMON = [*TINY_MODEL_ARGS, "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--report_to", "none",
          "--disable_tqdm", "true", "--logging_steps", "1", "--use_cpu", "true"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny", train_videos=2, val_videos=2, frames=16)


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory) -> Path:
    """One run of train.py (2 epochs, with a push that must fail offline)."""
    output_dir = tmp_path_factory.mktemp("run") / "au-mlt"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--dataset_dir", dataset_dir, "--output_dir",
         str(output_dir), "--num_train_epochs", "2", "--save_strategy", "epoch", "--push_to_hub", "--hub_model_id",
         "org/au-mlt", *COMMON],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode != 0, "the push cannot succeed offline"
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in completed.stderr, completed.stderr[-3000:]
    assert "| **mean** |" in completed.stdout  # the per-AU table was printed before the push
    return output_dir


def test_output_folder_holds_exactly_the_hub_files_and_checkpoints(trained):
    files = {path.name for path in trained.iterdir() if path.is_file()}
    folders = {path.name for path in trained.iterdir() if path.is_dir()}
    assert files == HUB_FOLDER_FILES
    assert folders == {"checkpoint-4", "checkpoint-8"}  # 32 rows / batch 8 = 4 steps per epoch
    assert json.loads((trained / "trainer_state.json").read_text())["global_step"] == 8


def test_card_metadata_and_results_match_an_independent_scoring(trained, dataset_dir):
    results = json.loads((trained / "eval_results.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    assert config["thresholds"] == [results["thresholds"][name] for name in AU_NAMES]
    assert config["smoothing_window"] == results["smoothing_window"]
    # F1 at 0.5 recomputed with scikit-learn from the saved model's predictions (entries -1 left out)
    from datasets import load_from_disk

    model = AUMLTModel.from_pretrained(trained).eval()
    validation = load_from_disk(dataset_dir)["validation"]
    batch = AUCollator()(list(validation.with_transform(EvalTransform(image_processor_for(model.config)))))
    with torch.no_grad():
        predicted = (model(pixel_values=batch["pixel_values"]).logits.sigmoid() >= 0.5).numpy()
    labels = batch["labels"].numpy()
    for index, name in enumerate(AU_NAMES):
        annotated = labels[:, index] != -1
        expected = f1_score(labels[annotated, index], predicted[annotated, index], zero_division=0.0)
        assert results[f"eval_f1_{name}"] == pytest.approx(expected, abs=1e-9)
    # the card's YAML: library, task, tags and a model-index holding the scores just measured
    metadata = metadata_load(trained / "README.md")
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-classification"
    assert {"custom_code", "action-unit-detection"} <= set(metadata["tags"])
    assert metadata["widget"][0]["src"].startswith("https://")
    card = ModelCard.load(trained / "README.md")
    scores = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert scores["mean F1 (threshold 0.5)"] == pytest.approx(results["eval_mean_f1"], abs=1e-4)
    assert scores["mean F1 (tuned thresholds)"] == pytest.approx(results["tuned_mean_f1"], abs=1e-4)
    for name in AU_NAMES:
        assert scores[f"F1 {name} (tuned thresholds)"] == pytest.approx(results[f"tuned_f1_{name}"], abs=1e-4)
    assert "org/au-mlt" in card.text and "trust_remote_code=True" in card.text and "Ethical" in card.text


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
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with torch.no_grad():
        expected = AUMLTModel.from_pretrained(trained).eval()(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-5)


class Interrupted(Exception):
    pass


def train_in_process(dataset_dir: str, output_dir: Path, *extra: str) -> None:
    run(*parse_arguments(["--dataset_dir", dataset_dir, "--output_dir", str(output_dir), "--max_steps", "7",
                          "--save_steps", "3", "--mixup_alpha", "0.4", "--label_smoothing", "0.1", *COMMON, *extra]))


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
    train_in_process(dataset_dir, tmp_path / "resumed", "--resume_from_checkpoint", str(tmp_path / "resumed" / "checkpoint-3"))
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    losses = [json.loads((tmp_path / run_dir / "trainer_state.json").read_text())["log_history"] for run_dir in ("straight", "resumed")]
    assert [entry["loss"] for entry in losses[0] if "loss" in entry][3:] == [entry["loss"] for entry in losses[1] if "loss" in entry][-4:]


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
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    completed = subprocess.run([*launch, str(REPO_ROOT / "scripts" / "train.py"), *arguments, "--output_dir",
                                str(tmp_path / "two")], capture_output=True, text=True, env=environment)
    assert completed.returncode == 0, completed.stderr[-4000:]
    run(*parse_arguments([*arguments, "--output_dir", str(tmp_path / "one")]))
    steps = {ranks: json.loads((tmp_path / ranks / "trainer_state.json").read_text())["global_step"] for ranks in ("one", "two")}
    assert steps == {"one": 4, "two": 2}  # 32 rows, batch 8 per process
