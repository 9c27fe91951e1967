"""Run every benchmark section in turn, each in a fresh interpreter, and collect their JSON results.

    PYTHONPATH=. python benchmarks/run_all.py            # full settings (the numbers in docs/benchmarks.md)
    PYTHONPATH=. python benchmarks/run_all.py --quick    # everything in under 15 minutes on 2 cores
    PYTHONPATH=. python benchmarks/run_all.py --tiny     # seconds per section: keeps the scripts working (CI)

Results go to `--results_dir` (default `docs/results/<setting>`), one JSON file per section; the converter
(section 4), video (section 7) and ONNX Runtime (`bench_onnx.py`) benchmarks run too when their scripts are
present. A failing section is reported and the others still run; the exit status is 1 if any failed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, machine_description, markdown_table

BENCHMARKS = REPO_ROOT / "benchmarks"

# Per setting, the arguments of each of this package's sections (the output flags are added by `commands`).
SETTINGS = {
    "full": {
        "inference": [],
        "training": [],
        "data": [],
        "quality": [],
        "attention": [],
    },
    "quick": {
        "inference": ["--repeats", "3"],
        "training": ["--batch_size", "16", "--steps", "3", "--rounds", "2"],
        "data": ["--batch_size", "16", "--batches", "2", "--steps", "3", "--rounds", "1"],
        "quality": [
            "--steps",
            "30",
            "--encoder_layers",
            "2",
            "--image_size",
            "32",
            "--max_eval_samples",
            "300",
            "--train_videos",
            "8",
            "--val_videos",
            "3",
            "--test_videos",
            "3",
            "--frames_per_video",
            "120",
        ],
        "attention": ["--max_frames", "120"],
    },
    "tiny": {
        "inference": ["--presets", "tiny", "--batch_sizes", "2", "--repeats", "1", "--matmul_size", "64"],
        "training": ["--preset", "tiny", "--batch_size", "2", "--steps", "2", "--rounds", "1"],
        "data": [
            "--preset",
            "tiny",
            "--batch_size",
            "2",
            "--batches",
            "1",
            "--steps",
            "2",
            "--rounds",
            "1",
            "--workers",
            "0",
            "1",
        ],
        "quality": [
            "--seeds",
            "0",
            "1",
            "--variants",
            "paper",
            "vit_linear_head",
            "mean_pool_linear",
            "--steps",
            "2",
            "--batch_size",
            "8",
            "--encoder_layers",
            "1",
            "--image_size",
            "32",
            "--patch_size",
            "16",
            "--train_videos",
            "6",
            "--val_videos",
            "2",
            "--test_videos",
            "2",
            "--frames_per_video",
            "150",
        ],
        "attention": ["--max_frames", "8"],
    },
}
# Sections written by other parts of the project, sized by their own --quick / --tiny: script name and the flag
# that takes the JSON path.
OPTIONAL = {
    "converter": ("bench_converter.py", "--output"),
    "video": ("bench_video.py", "--json"),
    "onnx": ("bench_onnx.py", "--output"),
}


def commands(setting: str, results_dir: Path, work_dir: Path, figure: Path) -> dict[str, list[str]]:
    """Section name -> argument list (script first) for `setting`."""
    arguments = SETTINGS[setting]
    extra = {
        "quality": ["--work_dir", str(work_dir)],
        "attention": [
            "--model_dir",
            str(work_dir / "paper_model"),
            "--synthetic_tree",
            str(work_dir / "synthetic_tree"),
            "--figure",
            str(figure),
        ],
    }
    runs = {
        name: [
            str(BENCHMARKS / f"bench_{name}.py"),
            *arguments[name],
            *extra.get(name, []),
            "--output",
            str(results_dir / f"{name}.json"),
        ]
        for name in arguments
    }
    for name, (script, output_flag) in OPTIONAL.items():
        if (BENCHMARKS / script).exists():
            size = [] if setting == "full" else [f"--{setting}"]
            runs[name] = [str(BENCHMARKS / script), *size, output_flag, str(results_dir / f"{name}.json")]
    return runs


def run_section(arguments: list[str]) -> tuple[int, float]:
    """Run one section's script with this checkout first on the path; (exit status, seconds)."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    status = subprocess.run([sys.executable, *arguments], env=environment, cwd=REPO_ROOT).returncode
    return status, time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="every section in under 15 minutes on 2 cores")
    size.add_argument("--tiny", action="store_true", help="seconds per section, to keep the scripts working")
    parser.add_argument("--results_dir", help="default: docs/results/<setting>")
    parser.add_argument("--work_dir", help="synthetic data and trained models (default: a folder in the system temp)")
    parser.add_argument("--sections", nargs="+", help="run only these sections")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setting = "tiny" if args.tiny else "quick" if args.quick else "full"
    results_dir = Path(args.results_dir or REPO_ROOT / "docs" / "results" / setting)
    work_dir = Path(args.work_dir or Path(tempfile.gettempdir()) / f"au_mlt_benchmarks_{setting}")
    figure = (
        REPO_ROOT / "docs" / "attention_regions.png" if setting == "full" else results_dir / "attention_regions.png"
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_description()}", flush=True)
    outcomes = []
    for name, arguments in commands(setting, results_dir, work_dir, figure).items():
        if args.sections and name not in args.sections:
            continue
        print(f"\n## {name}: {' '.join(arguments)}", flush=True)
        status, seconds = run_section(arguments)
        outcomes.append([name, "ok" if status == 0 else f"FAILED (exit {status})", round(seconds, 1)])
    print("\n" + markdown_table(["section", "status", "seconds"], outcomes))
    print(f"total: {sum(row[2] for row in outcomes):.0f} s; results in {results_dir}")
    return 1 if any(row[1] != "ok" for row in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
