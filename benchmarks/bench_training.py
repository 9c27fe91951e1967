"""Section 2: training speed and peak memory of AU-MLT against a ViT multi-label classifier.

AU-MLT runs in both cross-attention forms (`decoder_cross_attention` "projected" and "absorbed";
`default_cross_attention` in the results says which one the default "auto" builds at the preset). All models
get the same encoder, the same `AUMLTTrainer` settings (AdamW, batch size, the project's
weighted BCE + Dice loss on their logits) and the same in-memory random batches, so only the model
differs. Training runs in short blocks of optimizer steps, alternating between the models (A, B, A, B,
...); each step's time is the interval between consecutive `on_step_end` callbacks (data, forward,
backward, optimizer), the first step of each block (optimizer state allocation) dropped. Peak RSS comes
from one fresh interpreter per model, so neither model's memory hides the other's.

    PYTHONPATH=. python benchmarks/bench_training.py --output docs/results/training.json
    PYTHONPATH=. python benchmarks/bench_training.py --preset vit-b16-224 --batch_size 8 --steps 4 --threads 1
"""

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainingArguments, default_data_collator
from transformers.trainer_callback import PrinterCallback

from benchmarks.bench_inference import AU_MLT_FORMS, au_mlt_config, build_models
from benchmarks.common import (
    VISION_PRESETS,
    interleaved_rounds,
    markdown_table,
    median,
    peak_rss_mib,
    report,
    run_json_subprocess,
    set_threads,
    spread,
)
from modeling_au_mlt.training.trainer import AUMLTTrainer

MODELS = ("au_mlt_projected", "au_mlt_absorbed", "vit_classifier")


class RandomBatches(torch.utils.data.Dataset):
    """`count` fixed random images and {0, 1} labels, held in memory so that data costs nothing."""

    def __init__(self, count: int, image_size: int, num_labels: int = 12, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.pixel_values = torch.randn(count, 3, image_size, image_size, generator=generator)
        self.labels = torch.randint(0, 2, (count, num_labels), generator=generator).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}


class StepClock(TrainerCallback):
    """Records wall time and this process's CPU time at the end of every optimizer step."""

    def __init__(self) -> None:
        self.ends: list[tuple[float, float]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append((time.perf_counter(), time.process_time()))


def training_arguments(output_dir: str, batch_size: int, steps: int, num_workers: int = 0) -> TrainingArguments:
    """The Trainer settings shared by every model: no logging, saving or evaluation inside the timed steps."""
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=5e-5,
        warmup_steps=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=num_workers,
        remove_unused_columns=False,
    )


def timed_trainer(model, dataset, batch_size: int, steps: int, collator=default_data_collator, num_workers: int = 0):
    """An `AUMLTTrainer` for `steps` steps with a `StepClock` attached; returns (trainer, clock)."""
    clock = StepClock()
    # Nothing is saved (save_strategy "no"); Trainer only needs a directory name.
    arguments = training_arguments(
        str(Path(tempfile.gettempdir()) / "au_mlt_bench_trainer"), batch_size, steps, num_workers
    )
    trainer = AUMLTTrainer(
        model=model, args=arguments, train_dataset=dataset, data_collator=collator, callbacks=[clock]
    )
    trainer.remove_callback(PrinterCallback)  # its end-of-training summary would clutter the report
    return trainer, clock


def step_times(trainer, clock: StepClock) -> list[tuple[float, float]]:
    """Run one training block and return (wall, CPU) seconds of its steps after the first."""
    clock.ends.clear()
    trainer.train()
    return [(later[0] - earlier[0], later[1] - earlier[1]) for earlier, later in zip(clock.ends, clock.ends[1:])]


def step_seconds(trainer, clock: StepClock) -> list[float]:
    """Wall seconds of one training block's steps after the first."""
    return [wall for wall, _ in step_times(trainer, clock)]


def speed(preset: str, batch_size: int, steps: int, rounds: int, names: tuple[str, ...] = MODELS) -> dict:
    """Median step seconds, steps/s and samples/s of every model, and each AU-MLT's slowdown vs the ViT."""
    models = build_models(preset, names)
    dataset = RandomBatches(batch_size * steps, VISION_PRESETS[preset]["image_size"])
    trainers = {name: timed_trainer(models[name], dataset, batch_size, steps) for name in names}
    times = interleaved_rounds(
        {name: (lambda pair=pair: step_times(*pair)) for name, pair in trainers.items()}, rounds
    )
    seconds = {name: [wall for wall, _ in values] for name, values in times.items()}
    medians = {name: median(values) for name, values in seconds.items()}
    cpu_medians = {name: median([cpu for _, cpu in values]) for name, values in times.items()}
    au_mlts = [name for name in names if name in AU_MLT_FORMS]
    return {
        "default_cross_attention": au_mlt_config(preset).cross_attention_form,
        "median_step_seconds": medians,
        "noise": {name: spread(values) for name, values in seconds.items()},
        "timed_steps": {name: len(values) for name, values in seconds.items()},
        "steps_per_second": {name: 1 / medians[name] for name in names},
        "samples_per_second": {name: batch_size / medians[name] for name in names},
        "slowdown": {name: medians[name] / medians["vit_classifier"] - 1 for name in au_mlts},
        "median_step_cpu_seconds": cpu_medians,
        "cpu_slowdown": {name: cpu_medians[name] / cpu_medians["vit_classifier"] - 1 for name in au_mlts},
    }


def peak_rss_of(model_name: str, preset: str, batch_size: int, steps: int) -> dict:
    """Train one model in this process and return its peak RSS (used in the fresh interpreter)."""
    model = build_models(preset, (model_name,))[model_name]
    dataset = RandomBatches(batch_size * steps, VISION_PRESETS[preset]["image_size"])
    step_seconds(*timed_trainer(model, dataset, batch_size, steps))
    return {"model": model_name, "peak_rss_mib": peak_rss_mib()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vit-s16-112", choices=sorted(VISION_PRESETS))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per block (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=3, help="timed blocks per model after one warm-up block")
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=[*MODELS, "au_mlt"], help="models to train"
    )
    parser.add_argument("--no_rss", action="store_true", help="skip the peak-RSS runs (one training per model)")
    parser.add_argument(
        "--rss_only", choices=[*MODELS, "au_mlt"], help="internal: train this model alone and print its peak RSS"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if "vit_classifier" not in args.models:
        parser.error("--models: vit_classifier is needed, every slowdown is relative to it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.rss_only:
        print(json.dumps(peak_rss_of(args.rss_only, args.preset, args.batch_size, args.steps)))
        return
    names = tuple(args.models)
    result = {
        "preset": args.preset,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        **speed(args.preset, args.batch_size, args.steps, args.rounds, names),
    }
    if not args.no_rss:
        shared = ["--preset", args.preset, "--batch_size", str(args.batch_size), "--steps", str(args.steps)]
        shared += ["--threads", str(args.threads)] if args.threads else []
        # One interpreter per model; they run side by side (peak RSS does not depend on the neighbour).
        with ThreadPoolExecutor(len(names)) as pool:
            runs = pool.map(lambda name: run_json_subprocess(Path(__file__), [*shared, "--rss_only", name]), names)
            result["peak_rss_mib"] = {run["model"]: run["peak_rss_mib"] for run in runs}
    default = f"au_mlt_{result['default_cross_attention']}"
    rows = [
        [
            f"{name} (default)" if name == default else name,
            result["steps_per_second"][name],
            result["samples_per_second"][name],
            f"{100 * result['slowdown'][name]:+.1f}%" if name in result["slowdown"] else "",
            f"{100 * result['cpu_slowdown'][name]:+.1f}%" if name in result["cpu_slowdown"] else "",
            result.get("peak_rss_mib", {}).get(name, ""),
        ]
        for name in names
    ]
    headers = ["model", "steps/s", "samples/s", "step time vs ViT classifier", "same, CPU time", "peak RSS MiB"]
    table = markdown_table(headers, rows)
    report({"section": "training", **result}, args.output, table)


if __name__ == "__main__":
    main()
