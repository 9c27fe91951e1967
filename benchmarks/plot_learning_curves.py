"""Learning curves: validation mean F1 (threshold 0.5) against the optimizer step, one line per training run.

Each run is a `scripts/train.py` output folder trained with periodic evaluation (`--eval_strategy steps
--eval_steps N`); its `trainer_state.json` holds the evaluations. The main job's recipe beside the patch stem:

    python scripts/train.py --eval_strategy steps --eval_steps 250 --output_dir runs/conv
    python scripts/train.py --eval_strategy steps --eval_steps 250 --encoder_stem patch --output_dir runs/patch
    PYTHONPATH=. python benchmarks/plot_learning_curves.py --run "conv stem (main job)=runs/conv" \\
        --run "patch stem=runs/patch" --figure docs/learning_curve.png --output docs/results/full/learning_curve.json
"""

import argparse
import json
from pathlib import Path

import matplotlib

from benchmarks.common import markdown_table, report
from modeling_au_mlt.atomic_io import save_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

METRIC = "eval_mean_f1"


def evaluation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, validation mean F1) of every evaluation logged in the run's `trainer_state.json`."""
    state_file = run_dir / "trainer_state.json"
    if not state_file.exists():
        raise FileNotFoundError(f"{state_file}: no trainer state; train with scripts/train.py into {run_dir} first")
    points = [
        (entry["step"], entry[METRIC])
        for entry in json.loads(state_file.read_text())["log_history"]
        if METRIC in entry
    ]
    if not points:
        raise ValueError(f"{state_file}: no {METRIC} logged; train with --eval_strategy steps --eval_steps N")
    return points


def curve_figure(curves: dict[str, list[tuple[int, float]]]):
    """One line per run: validation mean F1 against step."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, points in curves.items():
        steps, scores = zip(*points)
        axes.plot(steps, scores, marker="o", markersize=3, label=label)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("validation mean F1 (threshold 0.5)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def parse_run(text: str) -> tuple[str, Path]:
    """`LABEL=DIR` -> (label, folder)."""
    label, separator, folder = text.partition("=")
    if not separator or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR, got {text!r}")
    return label, Path(folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=parse_run, action="append", required=True, help="LABEL=DIR, once per run")
    parser.add_argument("--figure", default="docs/learning_curve.png")
    parser.add_argument("--output", help="write the curves as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    curves = {label: evaluation_curve(folder) for label, folder in args.run}
    save_figure(curve_figure(curves), args.figure)
    rows = [
        [label, len(points), points[-1][0], max(score for _, score in points), points[-1][1]]
        for label, points in curves.items()
    ]
    table = markdown_table(["run", "evaluations", "last step", "best F1", "last F1"], rows)
    report({"section": "learning_curve", "curves": curves}, args.output, table)


if __name__ == "__main__":
    main()
