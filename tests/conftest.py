"""Shared fixtures: offline Hub, the tiny AU-MLT configuration every test builds on, a helper that runs the
command-line scripts as users do."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_au_mlt import AUMLTConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tiny encoder (a few thousand parameters, 32 px images, a 4 x 4 patch grid).
TINY_VISION = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
NUM_TOKENS = 1 + (32 // 8) ** 2  # CLS + patches
# The files of a folder `scripts/train.py` writes (beside its checkpoints): all of them go to the Hub.
TRAINED_FOLDER_FILES = {
    "README.md",
    "config.json",
    "configuration_au_mlt.py",
    "modeling_au_mlt.py",
    "model.safetensors",
    "preprocessor_config.json",
    "handler.py",
    "eval_results.json",
    "trainer_state.json",
    "loss_weights.json",
}
# The closest `scripts/train.py` arguments (its encoder width is a multiple of 64): one layer each side, 32 px.
TINY_MODEL_ARGS = [
    "--vision_preset",
    "tiny",
    "--vision_num_hidden_layers",
    "1",
    "--patch_size",
    "8",
    "--image_size",
    "32",
    "--decoder_layers",
    "1",
    "--decoder_attention_heads",
    "2",
    "--decoder_hidden_size",
    "32",
]
# What every tiny training run of the tests adds to TINY_MODEL_ARGS besides its batch size: CPU, no reports.
TINY_TRAINING_ARGS = [
    "--learning_rate",
    "3e-3",
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "1",
    "--use_cpu",
    "true",
]
# The model-folder and video fixtures, shared by the inference and hub tests.
pytest_plugins = ("inference_helpers",)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_script(script: str, *args, check: bool = True, env: dict | None = None, cwd=None):
    """Run `scripts/<script>` in a fresh interpreter with this checkout first on the path."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{script} exited {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return completed


def run_without_package(code: str, *args, tmp_path: Path, pythonpath: str | None = None) -> dict:
    """Run Python `code` with `args` in a fresh interpreter that cannot import this checkout (offline, its own
    remote-code module cache under `tmp_path`, `pythonpath` alone on the path if given), as a user without the
    package runs a Hub folder; the JSON object its last line of output prints."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    completed = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def script_runner():
    return run_script


def pytest_configure(config):
    # Marks of transformers' common model tests (test_transformers_common.py), registered as transformers'
    # own conftest does, so that collecting them does not warn.
    for mark in (
        "accelerate_tests",
        "flash_attn_test",
        "flash_attn_3_test",
        "flash_attn_4_test",
        "torch_compile_test",
    ):
        config.addinivalue_line("markers", f"{mark}: a mark of transformers' common model tests")


def tiny_config(**overrides) -> AUMLTConfig:
    """The tiny AU-MLT configuration (12 ABAW AUs unless `id2label` says otherwise); `overrides` are
    `AUMLTConfig` fields."""
    return AUMLTConfig(**{"vision_config": TINY_VISION, "decoder_attention_heads": 4, **overrides})


def random_pixels(batch_size: int, seed: int = 0) -> torch.Tensor:
    """Normal random pixel values (batch_size, 3, 32, 32) for the tiny encoder."""
    return torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
