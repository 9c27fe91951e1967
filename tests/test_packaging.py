"""The package as users install it: a wheel built from the sdist, installed without `-e`, runs the documented
training and evaluation commands and renders the model card from its own copy of the template."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY_MODEL_ARGS
from tiny_au_data import write_tiny_dataset

PACKAGE = "modeling_au_mlt"
# What setuptools needs to build: the package and the metadata files setup.cfg names.
BUILD_INPUTS = ("setup.cfg", "pyproject.toml", "README.md")


def package_files(root: Path) -> set[str]:
    """Every file of the package below `root`, as paths relative to `root`, without bytecode."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def run_installed(site: Path, *command, cwd: Path) -> subprocess.CompletedProcess:
    """Run `command` with the installed copy first on the path and the checkout nowhere on it."""
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True, env=env, cwd=cwd)
    assert completed.returncode == 0, (
        f"{command} exited {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    )
    return completed


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding only the wheel's contents, as `pip install .` would put them in site-packages."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(REPO_ROOT / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    for name in BUILD_INPUTS:
        shutil.copy(REPO_ROOT / name, source / name)
    # Default `build`: the sdist first, then the wheel from the unpacked sdist, as PyPI users get it.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "dist", source],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", target, wheel],
        check=True,
        capture_output=True,
    )
    return target


def test_the_wheel_ships_every_file_of_the_package(site):
    assert package_files(site) == package_files(REPO_ROOT)
    assert {f"{PACKAGE}/hub/templates/au_mlt.md", f"{PACKAGE}/evaluation/au_f1/au_f1.py"} <= package_files(site)


def test_the_installed_copy_is_the_one_imported(site, tmp_path):
    completed = run_installed(site, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)", cwd=tmp_path)
    assert Path(completed.stdout.strip()).parent == site / PACKAGE


def test_the_top_level_template_is_the_packaged_one():
    packaged = REPO_ROOT / PACKAGE / "hub" / "templates" / "au_mlt.md"
    assert (REPO_ROOT / "model_cards" / "au_mlt.md").read_bytes() == packaged.read_bytes()


def test_train_and_evaluate_run_from_the_installed_package(site, tmp_path):
    dataset_dir = write_tiny_dataset(tmp_path / "tiny", train_videos=2, val_videos=2, frames=8)
    output_dir = tmp_path / "au-mlt"
    common = ["--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--num_train_epochs", "1"]
    train = [REPO_ROOT / "scripts" / "train.py", "--dataset_dir", dataset_dir, "--output_dir", output_dir]
    run_installed(site, *train, *TINY_MODEL_ARGS, *common, cwd=tmp_path)

    card = (output_dir / "README.md").read_text()
    template = (site / PACKAGE / "hub" / "templates" / "au_mlt.md").read_text()
    headings = [line for line in template.splitlines() if line.startswith("## ")]
    assert headings and all(heading in card for heading in headings)
    assert "{{" not in card

    report = tmp_path / "eval.json"
    evaluate = [REPO_ROOT / "scripts" / "evaluate_model.py", "--model", output_dir, "--dataset_dir", dataset_dir]
    run_installed(site, *evaluate, "--split", "validation", "--output_json", report, cwd=tmp_path)
    eval_results = json.loads((output_dir / "eval_results.json").read_text())
    assert json.loads(report.read_text())["results"]["threshold_0.5"]["scores"]["mean_f1"] == pytest.approx(
        eval_results["eval_mean_f1"]
    )
