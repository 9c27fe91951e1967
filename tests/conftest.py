"""Shared fixtures: offline Hub, a helper that runs the command-line scripts as users do."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def script_runner():
    return run_script
