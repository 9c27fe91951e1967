"""Section 3: does the training data pipeline keep up with the model?

A `datasets.Dataset` laid out like the converter's output (JPEG `image` of ABAW's 112 px face size,
`labels`, `video_id`, `frame`) goes through the project's training transform (`transforms.TrainTransform`:
JPEG decode, resize, random affine, colour jitter, normalisation) and collator in a `DataLoader` with 0, 1
and 2 worker processes. In the same rounds, interleaved, the model trains: `AUMLTTrainer` steps on
in-memory tensors (the model's own samples/s, data free), and `AUMLTTrainer` steps on the transformed
dataset with each worker count (what training really gets when both share the CPU).

    PYTHONPATH=. python benchmarks/bench_data.py --output docs/results/data.json
"""

import argparse
import io
import time

import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value
from matplotlib import cbook
from PIL import Image as PILImage

from benchmarks.bench_inference import build_models
from benchmarks.bench_training import RandomBatches, step_seconds, timed_trainer
from benchmarks.common import VISION_PRESETS, interleaved_rounds, markdown_table, median, report, set_threads, spread
from modeling_au_mlt.data.transforms import AUCollator, AugmentationConfig, EpochState, TrainTransform
from modeling_au_mlt.hub.folder import image_processor_for

FACE_SIZE = 112  # ABAW's cropped-aligned faces are about 112 x 112


def face_jpegs(count: int, size: int = FACE_SIZE, seed: int = 0) -> list[bytes]:
    """`count` JPEG files of random square crops of matplotlib's sample portrait, `size` pixels wide."""
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        portrait = PILImage.open(handle).convert("RGB")
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        side = int(rng.integers(300, min(portrait.size)))
        left, top = (int(rng.integers(0, extent - side + 1)) for extent in portrait.size)
        buffer = io.BytesIO()
        portrait.crop((left, top, left + side, top + side)).resize((size, size)).save(
            buffer, format="JPEG", quality=90
        )
        images.append(buffer.getvalue())
    return images


def face_dataset(count: int, num_labels: int = 12, seed: int = 0) -> Dataset:
    """A dataset with the converter's columns: JPEG faces, {0, 1} labels, video ids and 1-based frames."""
    rng = np.random.default_rng(seed)
    features = Features(
        {
            "image": Image(),
            "labels": List(Value("float32"), length=num_labels),
            "video_id": Value("string"),
            "frame": Value("int32"),
        }
    )
    rows = {
        "image": [{"bytes": jpeg, "path": None} for jpeg in face_jpegs(count, seed=seed)],
        "labels": rng.integers(0, 2, (count, num_labels)).astype(np.float32).tolist(),
        "video_id": [f"video{index // 100}" for index in range(count)],
        "frame": [index % 100 + 1 for index in range(count)],
    }
    return Dataset.from_dict(rows, features=features)


def loader_seconds_per_sample(dataset, collator, batch_size: int, batches: int, num_workers: int) -> float:
    """Seconds per sample over `batches` batches, after the first (which pays for starting the workers)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collator)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - start) / (batches * batch_size)


def candidates_for(preset: str, batch_size: int, batches: int, steps: int, workers: list[int]) -> dict:
    """Name -> call returning seconds per sample, for the transform alone and for training with and without it."""
    model = build_models(preset, ("au_mlt",))["au_mlt"]
    epoch = EpochState()
    transform = TrainTransform(image_processor_for(model.config), AugmentationConfig(), seed=0, epoch_state=epoch)
    collator = AUCollator(epoch_state=epoch)
    faces = face_dataset(batch_size * max(batches + 1, steps)).with_transform(transform)
    tensors = RandomBatches(batch_size * steps, VISION_PRESETS[preset]["image_size"])
    trainers = {"training, in-memory tensors": timed_trainer(model, tensors, batch_size, steps)}
    candidates = {}
    for count in workers:
        trainers[f"training, transform, {count} workers"] = timed_trainer(
            model, faces, batch_size, steps, collator, count
        )
        candidates[f"transform, {count} workers"] = lambda count=count: [
            loader_seconds_per_sample(faces, collator, batch_size, batches, count)
        ]
    for name, pair in trainers.items():
        candidates[name] = lambda pair=pair: [seconds / batch_size for seconds in step_seconds(*pair)]
    return candidates


def measure(preset: str, batch_size: int, batches: int, steps: int, rounds: int, workers: list[int]) -> dict:
    """Samples/s of the transform per worker count, of model training alone and of training fed by the transform."""
    per_sample = interleaved_rounds(candidates_for(preset, batch_size, batches, steps, workers), rounds)
    return {
        "preset": preset,
        "batch_size": batch_size,
        "samples_per_second": {name: 1 / median(values) for name, values in per_sample.items()},
        "noise": {name: spread(values) for name, values in per_sample.items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vit-s16-112", choices=sorted(VISION_PRESETS))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="timed DataLoader batches per round")
    parser.add_argument("--steps", type=int, default=4, help="training steps per block (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--output", help="write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    result = measure(args.preset, args.batch_size, args.batches, args.steps, args.rounds, args.workers)
    model_rate = result["samples_per_second"]["training, in-memory tensors"]
    rows = [[name, rate, f"{rate / model_rate:.2f}x"] for name, rate in result["samples_per_second"].items()]
    table = markdown_table(["pipeline", "samples/s", "vs model training on in-memory tensors"], rows)
    report({"section": "data", **result}, args.output, table)


if __name__ == "__main__":
    main()
