"""Section 5: learning quality of AU-MLT and its alternatives on the synthetic ABAW benchmark.

Every variant trains with the project's training library (`training.load_splits`, `build_model`,
`build_trainer`, `tuned_results`) on the same converted synthetic data, with the same encoder size, the same
number of optimizer steps and the same 3 seeds; only the named switch differs:

- (a) `paper`: AU-MLT as in the paper (token self-attention, shared head), frequency-weighted loss;
- (b) `no_self_attention`: (a) without token self-attention among the labels (eq. 5 dropped);
- (c) `per_label_head`: (a) with one linear map per label token (the Query2Label form);
- (d) `vit_linear_head`: `ViTForImageClassification`, a linear multi-label head on the encoder's CLS token;
- (e) `unweighted_loss`: (a) with every AU weighted equally in the loss.

Reported: mean +- std over seeds of the validation mean F1 and of each AU's F1 (threshold 0.5). The data
(`make_synthetic_abaw` tree and its `prepare_abaw` conversion) is written once under `--work_dir` and
reused, and so is every finished run's `scores.json` (same settings), so an interrupted run resumes. The
tree's `regions.json` and the paper variant's first model feed section 6 (`bench_attention.py`).

    PYTHONPATH=. python benchmarks/bench_quality.py --work_dir bench_work --output docs/results/quality.json
"""

import argparse
import json
import statistics
from pathlib import Path

import transformers
from transformers import ViTConfig, ViTForImageClassification
from transformers.trainer_callback import PrinterCallback

from benchmarks.common import markdown_table, report, write_json
from modeling_au_mlt.abaw import prepare_abaw
from modeling_au_mlt.synthetic import make_synthetic_abaw
from modeling_au_mlt.training import build_model, build_trainer, dataset_label_names, load_splits, tuned_results
from modeling_au_mlt.training_args import parse_arguments

VARIANTS = {
    "paper": [],
    "no_self_attention": ["--label_self_attention", "false"],
    "per_label_head": ["--head_type", "per_label"],
    "vit_linear_head": [],
    "unweighted_loss": ["--loss_weighting", "none"],
}
BASELINE = "vit_linear_head"
PAPER_MODEL_DIR = "paper_model"  # under --work_dir: the paper variant's first-seed model, for section 6


class BaselineViTConfig(ViTConfig):
    """A `ViTConfig` that is its own `vision_config`, so the library's image processor sizing applies to it."""

    @property
    def vision_config(self) -> ViTConfig:
        return self


def synthetic_data(work_dir: Path, videos: tuple[int, int], frames: int, seed: int) -> tuple[Path, Path]:
    """(tree, dataset): the synthetic ABAW tree and its converted DatasetDict, made once under `work_dir`."""
    tree, dataset = work_dir / "synthetic_tree", work_dir / "synthetic_dataset"
    if not (tree / "regions.json").exists():
        make_synthetic_abaw(tree, train_videos=videos[0], val_videos=videos[1], frames_per_video=frames, seed=seed, overwrite=True)
    if not (dataset / "dataset_dict.json").exists():
        prepare_abaw(tree / "cropped_aligned", tree / "AU_Detection_Challenge", dataset)
    return tree, dataset


def library_arguments(dataset: Path, run_dir: Path, variant: str, seed: int, args: argparse.Namespace):
    """The training library's (model, data, training) arguments of one run."""
    argv = [
        "--dataset_dir", str(dataset), "--output_dir", str(run_dir), "--seed", str(seed),
        "--vision_preset", args.vision_preset, "--vision_num_hidden_layers", str(args.encoder_layers),
        "--patch_size", str(args.patch_size), "--image_size", str(args.image_size),
        "--decoder_attention_heads", "4", "--max_steps", str(args.steps),
        "--per_device_train_batch_size", str(args.batch_size), "--per_device_eval_batch_size", "128",
        "--learning_rate", str(args.learning_rate), "--weight_decay", "0.05", "--warmup_steps", "0.05",
        "--lr_scheduler_type", "cosine", "--save_strategy", "no", "--eval_strategy", "no",
        "--logging_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--tune_postprocessing", "false", "--dataloader_num_workers", "0", *VARIANTS[variant],
    ]
    if args.max_eval_samples:
        argv += ["--max_eval_samples", str(args.max_eval_samples)]
    return parse_arguments(argv)


def baseline_model(au_mlt_config, label_names: list[str]) -> ViTForImageClassification:
    """`ViTForImageClassification` with AU-MLT's vision config and labels, multi-label."""
    labels = dict(enumerate(label_names))
    label_fields = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}, "problem_type": "multi_label_classification"}
    config = BaselineViTConfig(**{**au_mlt_config.vision_config.to_dict(), **label_fields})
    return ViTForImageClassification(config)


def run_scores(dataset: Path, work_dir: Path, variant: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Scores of one run, read from its `scores.json` when an identical earlier run finished, else trained now."""
    run_dir = work_dir / "runs" / f"{variant}-seed{seed}"
    settings = {key: value for key, value in vars(args).items() if key not in ("output", "variants", "seeds", "paper_model_seed")}
    cached = run_dir / "scores.json"
    if cached.exists() and json.loads(cached.read_text())["settings"] == settings:
        return json.loads(cached.read_text())["scores"]
    scores = train_and_score(dataset, work_dir, run_dir, variant, seed, args)
    write_json(cached, {"settings": settings, "scores": scores})
    return scores


def train_and_score(dataset: Path, work_dir: Path, run_dir: Path, variant: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Train one variant with one seed; validation scores at 0.5 (`mean_f1`, `f1_<AU>`)."""
    model_args, data_args, training_args = library_arguments(dataset, run_dir, variant, seed, args)
    splits = load_splits(data_args, training_args)
    label_names = dataset_label_names(splits["train"], data_args)
    transformers.set_seed(seed)  # the model's initial weights depend on the seed too
    model = build_model(model_args, label_names, data_args.image_size)
    if variant == BASELINE:
        transformers.set_seed(seed)
        model = baseline_model(model.config, label_names)
    trainer = build_trainer(model, splits, label_names, data_args, training_args)
    trainer.remove_callback(PrinterCallback)  # one printed dict per run would drown the report
    trainer.train()
    if variant == "paper" and seed == args.paper_model_seed:
        trainer.model.save_pretrained(work_dir / PAPER_MODEL_DIR)
    scores = tuned_results(trainer, splits["eval"], label_names, tune=False)["eval"]
    return {key.removeprefix("eval_"): value for key, value in scores.items() if key == "eval_mean_f1" or key.startswith("eval_f1_")}


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and metric: mean and std over the seeds."""
    return {variant: {key: mean_std([run[key] for run in scores]) for key in scores[0]} for variant, scores in runs.items()}


def summary_table(summary: dict) -> str:
    """Markdown: one row per variant, mean F1 then each AU's F1, as mean +- std."""
    metrics = list(next(iter(summary.values())))
    rows = [[variant] + [f"{stats[key]['mean']:.3f} ± {stats[key]['std']:.3f}" for key in metrics] for variant, stats in summary.items()]
    return markdown_table(["variant", *(key.removeprefix("f1_") for key in metrics)], rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True, help="synthetic data, runs and the paper model go here")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--paper_model_seed", type=int, default=0, help="the paper variant's run that saves its model")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every run")
    parser.add_argument("--max_eval_samples", type=int, help="score on the first N validation frames only")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--vision_preset", default="tiny", help="the training library's encoder preset")
    parser.add_argument("--encoder_layers", type=int, default=4)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64, help="model input size (the faces are 112 px)")
    parser.add_argument("--train_videos", type=int, default=24)
    parser.add_argument("--val_videos", type=int, default=8)
    parser.add_argument("--frames_per_video", type=int, default=200)
    parser.add_argument("--data_seed", type=int, default=0, help="seed of the synthetic data (fixed across runs)")
    parser.add_argument("--output", help="write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work_dir = Path(args.work_dir)
    tree, dataset = synthetic_data(work_dir, (args.train_videos, args.val_videos), args.frames_per_video, args.data_seed)
    runs = {variant: [run_scores(dataset, work_dir, variant, seed, args) for seed in args.seeds] for variant in args.variants}
    summary = summarise(runs)
    payload = {"section": "quality", "settings": vars(args), "synthetic_tree": str(tree), "runs": runs, "summary": summary}
    report(payload, args.output, summary_table(summary))


if __name__ == "__main__":
    main()
