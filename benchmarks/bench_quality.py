"""Section 5: learning quality of AU-MLT and its alternatives, trained with the main job's recipe.

Every variant trains with the project's training library (`training.splits.load_splits`,
`training.run.build_model`, `build_trainer`) and the main job's settings (`training.arguments.DEFAULT_JOB`:
encoder, stem, optimiser, schedule, augmentation, loss) on the same synthetic ABAW data (train / validation /
held-out test identities), for the same number of optimizer steps and the same seeds; only the named part
differs:

- (a) `paper`: AU-MLT as in the paper (token self-attention, shared head);
- (b) `no_self_attention`: (a) without token self-attention among the labels (eq. 5 dropped; Query2Label);
- (c) `per_label_head`: (a) with one linear map per label token (ML-Decoder's form);
- (d) `vit_linear_head`: `ViTForImageClassification`, a linear multi-label head on the CLS token of the same
  encoder (same stem, same initial weights);
- (e) `mean_pool_linear`: a linear head on the mean of the same encoder's patch tokens;
- (f) `pre_norm`: (a) with pre-norm decoder layers (`decoder_norm_first`), a departure from eqs. 5-7.

Reported per run: validation mean F1 at 0.5, test mean F1 at 0.5 and at the per-AU thresholds (and smoothing
window) tuned on validation, with and without the threshold guard (`evaluation.tuning.GUARD_MARGIN`), and each AU's
test F1 at 0.5; per variant the mean +- std over seeds and the per-seed differences from (a). The data (the
`make_synthetic_abaw` tree and its `prepare_abaw` conversion) is written once under `--work_dir` and reused,
and so is every finished run's `scores.json` (same settings), so an interrupted run resumes. The tree's
`regions.json` and the paper variant's first model feed section 6 (`bench_attention.py`).

    PYTHONPATH=. python benchmarks/bench_quality.py --work_dir bench_work --output docs/results/quality.json
"""

import argparse
import json
import statistics
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import ViTConfig, ViTForImageClassification
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.trainer_callback import PrinterCallback

from benchmarks.common import markdown_table, report
from modeling_au_mlt.atomic_io import write_json
from modeling_au_mlt.data.abaw import prepare_abaw
from modeling_au_mlt.evaluation.tuning import guarded_thresholds, smooth_probabilities
from modeling_au_mlt.synthetic.tree import make_synthetic_abaw
from modeling_au_mlt.training.arguments import DEFAULT_JOB, DataArguments, parse_arguments
from modeling_au_mlt.training.run import (
    build_model,
    build_trainer,
    held_out_scores,
    split_probabilities,
    tuned_results,
    video_columns,
)
from modeling_au_mlt.training.splits import dataset_label_names, load_splits

VARIANTS = {
    "paper": [],
    "no_self_attention": ["--label_self_attention", "false"],
    "per_label_head": ["--head_type", "per_label"],
    "vit_linear_head": [],
    "mean_pool_linear": [],
    "pre_norm": ["--decoder_norm_first", "true"],
}
REFERENCE = "paper"
PAPER_MODEL_DIR = "paper_model"  # under --work_dir: the paper variant's first-seed model, for section 6
# The main job's settings that every run shares; the run-specific ones are set by `library_arguments`.
RUN_SPECIFIC = (
    "output_dir",
    "num_train_epochs",
    "logging_steps",
    "eval_strategy",
    "save_strategy",
    "image_size",
    "vision_num_hidden_layers",
    "patch_size",
    "per_device_train_batch_size",
)


class BaselineViTConfig(ViTConfig):
    """A `ViTConfig` that is its own `vision_config`, so the library's image processor sizing applies to it."""

    @property
    def vision_config(self) -> ViTConfig:
        return self

    @property
    def label_names(self) -> list[str]:
        """Label names in output order, as `AUMLTConfig.label_names` gives them (the training library reads them)."""
        return [self.id2label[index] for index in range(self.num_labels)]

    @property
    def temporal_layers(self) -> int:
        """0: a frame model, as the training library reads `AUMLTConfig.temporal_layers`."""
        return 0


class MeanPoolLinear(nn.Module):
    """Baseline (e): a linear multi-label head on the mean of an encoder's patch tokens (CLS left out)."""

    def __init__(self, encoder: nn.Module, config) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.classifier = nn.Linear(config.vision_config.hidden_size, config.num_labels)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        # `labels` is accepted (and left to the Trainer's loss) so that Trainer finds the label column.
        tokens = self.encoder(pixel_values).last_hidden_state[:, 1:]  # (batch, patches, hidden)
        return ImageClassifierOutput(logits=self.classifier(tokens.mean(dim=1)))


def synthetic_data(work_dir: Path, videos: tuple[int, int, int], frames: int, seed: int) -> tuple[Path, Path]:
    """(tree, dataset): the synthetic ABAW tree and its converted DatasetDict, made once under `work_dir`."""
    tree, dataset = work_dir / "synthetic_tree", work_dir / "synthetic_dataset"
    if not (tree / "regions.json").exists():
        make_synthetic_abaw(
            tree,
            train_videos=videos[0],
            val_videos=videos[1],
            test_videos=videos[2],
            frames_per_video=frames,
            seed=seed,
            overwrite=True,
        )
    if not (dataset / "dataset_dict.json").exists():
        prepare_abaw(tree / "cropped_aligned", tree / "AU_Detection_Challenge", dataset)
    return tree, dataset


def library_arguments(dataset: Path, run_dir: Path, variant: str, seed: int, args: argparse.Namespace):
    """The training library's (model, data, training) arguments of one run: the main job's, for `args.steps` steps."""
    recipe = [f"--{key}={value}" for key, value in DEFAULT_JOB.items() if key not in RUN_SPECIFIC]
    argv = [
        *recipe,
        "--dataset_dir",
        str(dataset),
        "--output_dir",
        str(run_dir),
        "--seed",
        str(seed),
        "--vision_num_hidden_layers",
        str(args.encoder_layers),
        "--patch_size",
        str(args.patch_size),
        "--image_size",
        str(args.image_size),
        "--per_device_train_batch_size",
        str(args.batch_size),
        "--max_steps",
        str(args.steps),
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--logging_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        *VARIANTS[variant],
    ]
    if args.max_eval_samples:
        argv += ["--max_eval_samples", str(args.max_eval_samples)]
    return parse_arguments(argv)


def variant_model(variant: str, model_args, label_names: list[str], image_size: int, seed: int) -> nn.Module:
    """The variant's model; the baselines reuse AU-MLT's encoder built with the same seed (same stem, same init)."""
    transformers.set_seed(seed)
    model = build_model(model_args, label_names, image_size)
    if variant == "vit_linear_head":
        labels = dict(enumerate(label_names))
        config = BaselineViTConfig(
            **{
                **model.config.vision_config.to_dict(),
                "id2label": labels,
                "label2id": {v: k for k, v in labels.items()},
                "problem_type": "multi_label_classification",
            }
        )
        baseline = ViTForImageClassification(config)
        baseline.vit = model.encoder
        return baseline
    if variant == "mean_pool_linear":
        return MeanPoolLinear(model.encoder, model.config)
    return model


def run_scores(dataset: Path, work_dir: Path, variant: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Scores of one run, read from its `scores.json` when an identical earlier run finished, else trained now."""
    run_dir = work_dir / "runs" / f"{variant}-seed{seed}"
    settings = {
        key: value
        for key, value in vars(args).items()
        if key not in ("output", "variants", "seeds", "paper_model_seed")
    }
    settings["recipe"] = DEFAULT_JOB
    cached = run_dir / "scores.json"
    if cached.exists() and json.loads(cached.read_text())["settings"] == settings:
        return json.loads(cached.read_text())["scores"]
    scores = train_and_score(dataset, work_dir, run_dir, variant, seed, args)
    write_json(cached, {"settings": settings, "scores": scores})
    return scores


def unguarded_test_mean_f1(trainer, splits, results: dict) -> float:
    """Test mean F1 at thresholds tuned on validation without the guard (same smoothing window)."""
    _, probs, labels = split_probabilities(trainer, trainer.eval_dataset, "eval")
    video_ids, frames = video_columns(splits["eval"])
    smoothed = smooth_probabilities(probs, video_ids, results["smoothing_window"], frames)
    thresholds, _ = guarded_thresholds(smoothed, labels, margin=None)
    return held_out_scores(trainer, splits["test"], {**results, "thresholds": thresholds})["test_tuned_mean_f1"]


def train_and_score(
    dataset: Path, work_dir: Path, run_dir: Path, variant: str, seed: int, args: argparse.Namespace
) -> dict[str, float]:
    """Train one variant with one seed; validation and test scores (see the module docstring)."""
    model_args, data_args, training_args = library_arguments(dataset, run_dir, variant, seed, args)
    splits = load_splits(data_args, training_args)
    if "test" not in splits:
        raise ValueError(f"{dataset}: no labelled test split; rebuild --work_dir with --test_videos > 0")
    label_names = dataset_label_names(splits["train"], data_args)
    model = variant_model(variant, model_args, label_names, data_args.image_size, seed)
    trainer = build_trainer(model, splits, data_args, training_args)
    trainer.remove_callback(PrinterCallback)  # one printed dict per run would drown the report
    trainer.train()
    if variant == REFERENCE and seed == args.paper_model_seed:
        trainer.model.save_pretrained(work_dir / PAPER_MODEL_DIR)
    results = tuned_results(trainer, splits["eval"], tune=True)
    test = held_out_scores(trainer, splits["test"], results)
    per_au = {f"test_f1_{name}": test[f"test_f1_{name}"] for name in label_names}
    return {
        "eval_mean_f1": results["eval"]["eval_mean_f1"],
        "test_mean_f1": test["test_mean_f1"],
        "test_tuned_mean_f1": test["test_tuned_mean_f1"],
        "test_unguarded_mean_f1": unguarded_test_mean_f1(trainer, splits, results),
        **per_au,
    }


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and metric: mean and std over the seeds."""
    return {
        variant: {key: mean_std([run[key] for run in scores]) for key in scores[0]} for variant, scores in runs.items()
    }


def paired_differences(runs: dict[str, list[dict]], key: str = "test_mean_f1") -> dict[str, list[float]]:
    """Per variant other than (a): its `key` minus (a)'s, seed by seed (runs are listed in seed order)."""
    if REFERENCE not in runs:
        return {}
    return {
        variant: [run[key] - reference[key] for run, reference in zip(scores, runs[REFERENCE])]
        for variant, scores in runs.items()
        if variant != REFERENCE
    }


def summary_table(summary: dict, differences: dict[str, list[float]]) -> str:
    """Markdown: one row per variant, the scores as mean +- std, then the per-seed test differences from (a)."""
    metrics = list(next(iter(summary.values())))
    rows = [
        [variant]
        + [f"{stats[key]['mean']:.3f} ± {stats[key]['std']:.3f}" for key in metrics]
        + [" ".join(f"{value:+.3f}" for value in differences.get(variant, []))]
        for variant, stats in summary.items()
    ]
    return markdown_table(
        ["variant", *(key.removeprefix("test_f1_") for key in metrics), "test F1 - (a), per seed"], rows
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True, help="synthetic data, runs and the paper model go here")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--paper_model_seed", type=int, default=0, help="the paper variant's run that saves its model")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps of every run")
    parser.add_argument("--max_eval_samples", type=int, help="score on the first N validation and test frames only")
    parser.add_argument("--batch_size", type=int, default=DEFAULT_JOB["per_device_train_batch_size"])
    parser.add_argument("--encoder_layers", type=int, default=DEFAULT_JOB["vision_num_hidden_layers"])
    parser.add_argument("--patch_size", type=int, default=DEFAULT_JOB["patch_size"])
    parser.add_argument("--image_size", type=int, default=DEFAULT_JOB["image_size"], help="model input size (pixels)")
    parser.add_argument("--train_videos", type=int, default=DataArguments.synthetic_train_videos)
    parser.add_argument("--val_videos", type=int, default=DataArguments.synthetic_val_videos)
    parser.add_argument("--test_videos", type=int, default=DataArguments.synthetic_test_videos)
    parser.add_argument("--frames_per_video", type=int, default=DataArguments.synthetic_frames_per_video)
    parser.add_argument("--data_seed", type=int, default=0, help="seed of the synthetic data (fixed across runs)")
    parser.add_argument("--output", help="write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work_dir = Path(args.work_dir)
    videos = (args.train_videos, args.val_videos, args.test_videos)
    tree, dataset = synthetic_data(work_dir, videos, args.frames_per_video, args.data_seed)
    runs = {
        variant: [run_scores(dataset, work_dir, variant, seed, args) for seed in args.seeds]
        for variant in args.variants
    }
    summary, differences = summarise(runs), paired_differences(runs)
    payload = {
        "section": "quality",
        "settings": vars(args),
        "recipe": DEFAULT_JOB,
        "synthetic_tree": str(tree),
        "runs": runs,
        "summary": summary,
        "paired_test_differences": differences,
    }
    report(payload, args.output, summary_table(summary, differences))


if __name__ == "__main__":
    main()
