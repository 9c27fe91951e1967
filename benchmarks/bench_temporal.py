"""The temporal AU-MLT against the frame model with a tuned moving average, at equal training compute (issue 11).

    PYTHONPATH=. python benchmarks/bench_temporal.py --workdir /tmp/bench-temporal     # about an hour on 2 cores

Every model is trained by `scripts/train.py` on the embedded synthetic job with `--synthetic_nuisances` (short
occlusions, motion blur, lighting flicker, head turns, heavy JPEG; labels stay the true AU state):

1. `frame`: the main job's frame model on that data.
2. From `frame`, with one schedule (`--learning_rate`, cosine, 5 % warm-up) and the same number of frames through
   the encoder: `frame_more` keeps training the frame model; `temporal` adds `--temporal_layers` layers over clips
   of `--temporal_window` frames (per-AU attention, both sides); `temporal_causal` the same, past frames only;
   `temporal_all_labels` the same with attention to every label token of the clip. A clip epoch passes each
   frame about twice (half-window tiling), so `frame_more` trains for as many row epochs as the clips hold frames.
3. Every run tunes per-AU thresholds and a per-video moving-average window on validation (`tune_post_processing`)
   and scores the held-out test identities with them (`test_tuned_*` in its `eval_results.json`): the frame model
   with its best moving average is the baseline. This script rescores the test split with the same settings
   (`predict_split` + `smooth_probabilities`) to split the F1 by nuisance type (`nuisances.json`).
4. Cost per frame in the prediction pipeline of `scripts/predict.py` (`Prediction`, `--no_detect`, one test
   video written as MP4), both models interleaved in one run; and a figure of one test video's AU timelines.

A stage whose folder already holds a finished run (`eval_results.json` and `README.md`) is reused, so an
interrupted benchmark resumes; the workdir must be given anew for a fresh comparison.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from datasets import load_from_disk
from transformers import AutoModel

from benchmarks.common import REPO_ROOT, interleaved_rounds, load_average, markdown_table, median, report
from modeling_au_mlt.atomic_io import save_figure
from modeling_au_mlt.data.clips import training_clips
from modeling_au_mlt.evaluation.metrics import au_scores
from modeling_au_mlt.evaluation.prediction import predict_split
from modeling_au_mlt.evaluation.tuning import smooth_probabilities
from modeling_au_mlt.hub.folder import image_processor_for
from modeling_au_mlt.inference.predictor import AUPredictor, Prediction
from modeling_au_mlt.synthetic.nuisances import NUISANCE_TYPES
from modeling_au_mlt.training.arguments import parse_arguments
from modeling_au_mlt.training.splits import synthetic_dataset_dir, synthetic_nuisance_file

ARMS = ("frame_more", "temporal", "temporal_causal", "temporal_all_labels")
INITIALS = {"occlusion": "O", "motion_blur": "B", "lighting_flicker": "L", "head_turn": "T", "heavy_jpeg": "J"}
TEMPORAL_FLAGS = {
    "temporal": [],
    "temporal_causal": ["--temporal_causal"],
    "temporal_all_labels": ["--temporal_attention_scope", "all_labels"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="the runs' folders (reused when finished)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="what to train from `frame`")
    parser.add_argument("--frame_epochs", type=float, default=12.0, help="epochs of the frame model (main job: 12)")
    parser.add_argument("--clip_epochs", type=float, default=2.0, help="clip epochs of the temporal arms")
    parser.add_argument("--temporal_layers", type=int, default=2)
    parser.add_argument("--temporal_window", type=int, default=16)
    parser.add_argument("--clips_per_batch", type=int, default=4, help="clips per step (x window frames)")
    parser.add_argument("--learning_rate", type=float, default=3e-4, help="of every arm after `frame`")
    parser.add_argument("--speed_rounds", type=int, default=5, help="interleaved predict runs per model")
    parser.add_argument("--speed_videos", type=int, default=20, help="test videos joined into the speed video")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train.py arguments for all runs")
    parser.add_argument("--output", default="docs/results/full/temporal.json")
    parser.add_argument("--figure", default="docs/temporal_timelines.png")
    return parser.parse_args(argv)


def train(folder: Path, arguments: list[str]) -> dict:
    """`scripts/train.py --synthetic_nuisances --output_dir folder *arguments` unless `folder` holds a finished run;
    returns its `eval_results.json` with the run's `train_runtime` (s) and `train_steps`."""
    if not ((folder / "eval_results.json").is_file() and (folder / "README.md").is_file()):
        command = [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--synthetic_nuisances"]
        command += ["--output_dir", str(folder), *arguments]
        with open(folder.with_suffix(".log"), "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=environment())
    results = json.loads((folder / "eval_results.json").read_text())
    state = json.loads((folder / "trainer_state.json").read_text())
    runtime = next(entry["train_runtime"] for entry in state["log_history"] if "train_runtime" in entry)
    return {**results, "train_runtime": runtime, "train_steps": state["global_step"]}


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}


def equal_compute_epochs(clip_epochs: float, clip_frames: int, train_rows: int) -> float:
    """Row epochs of the frame model that pass as many frames through the encoder as `clip_epochs` of clips
    holding `clip_frames` frames (gaps excluded) over a split of `train_rows` rows."""
    return clip_epochs * clip_frames / train_rows


def nuisance_masks(video_ids: np.ndarray, frames: np.ndarray, document: dict) -> dict[str, np.ndarray]:
    """Per nuisance type, and `none`, the rows (N,) bool of `nuisances.json`'s frames of that type."""
    listed = {
        (video, int(frame)): set(types)
        for video, entries in document["videos"].items()
        for frame, types in entries.items()
    }
    row_types = [listed.get((str(video), int(frame)), set()) for video, frame in zip(video_ids, frames)]
    masks = {name: np.array([name in types for types in row_types]) for name in NUISANCE_TYPES}
    return masks | {"none": np.array([not types for types in row_types])}


def rescored(folder: Path, test) -> dict:
    """Test probabilities of a saved model, raw and post-processed with its tuned window, and its thresholds."""
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    predictions = predict_split(model, test, image_processor_for(model.config), batch_size=64, progress=False)
    window, video_ids = model.config.smoothing_window, list(predictions.video_ids)
    return {
        "raw": predictions.probabilities,
        "smoothed": smooth_probabilities(predictions.probabilities, video_ids, window, predictions.frames),
        "thresholds": model.config.thresholds,
        "predictions": predictions,
    }


def scores_by_nuisance(probs, labels, masks: dict, thresholds, label_names) -> dict[str, dict]:
    """Mean F1 and row count per nuisance mask (`au_scores` on the masked rows)."""
    return {
        name: {
            "rows": int(mask.sum()),
            "mean_f1": au_scores(probs[mask], labels[mask], thresholds, label_names)["mean_f1"],
        }
        for name, mask in masks.items()
    }


def test_video(test, video_ids: list[str], path: Path) -> Path:
    """Test videos' frames written one after the other as an MP4 (each video's in frame order), for `predict.py`."""
    all_ids, frames = np.asarray(test["video_id"]), np.asarray(test["frame"])
    order = [
        row
        for video_id in video_ids
        for row in sorted(np.flatnonzero(all_ids == video_id), key=lambda row: frames[row])
    ]
    rows = test.select(order)
    first = np.asarray(rows[0]["image"].convert("RGB"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (first.shape[1], first.shape[0]))
    for image in rows["image"]:
        writer.write(cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def prediction_speed(folders: dict[str, Path], video: Path, rounds: int) -> dict[str, dict]:
    """Frames/s of `Prediction` (what `scripts/predict.py --no_detect` runs) per model, interleaved rounds."""
    predictors = {name: AUPredictor(folder, device="cpu") for name, folder in folders.items()}

    def run(name: str):
        def call() -> list[float]:
            with tempfile.TemporaryDirectory() as output:
                prediction = Prediction(predictors[name], output, detect=False, smooth=1, progress=False)
                started = time.perf_counter()
                prediction.run([video])
                return [prediction.stats["frames"] / (time.perf_counter() - started)]

        return call

    values = interleaved_rounds({name: run(name) for name in folders}, rounds=rounds, warmup=1)
    return {name: {"frames_per_second": median(speeds), "runs": speeds} for name, speeds in values.items()}


def timeline_figure(
    path, video_id: str, frames, labels, curves: dict, label_names: list[str], nuisances: dict[int, list[str]]
) -> None:
    """Per AU, the truth and each model's probability over one video's frames; frames with a nuisance shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(label_names), 1, figsize=(10, 1.1 * len(label_names)), sharex=True)
    for column, (axis, name) in enumerate(zip(axes, label_names)):
        truth = np.where(labels[:, column] < 0, np.nan, labels[:, column])
        axis.fill_between(frames, 0, truth, step="mid", color="0.85", label="truth")
        for frame in nuisances:
            axis.axvspan(frame - 0.5, frame + 0.5, color="tab:red", alpha=0.15, lw=0)
        for label, values in curves.items():
            axis.plot(frames, values[:, column], lw=1.0, label=label)
        axis.set_ylim(-0.05, 1.05)
        axis.set_ylabel(name, rotation=0, ha="right", va="center")
        axis.set_yticks([])
    for frame, types in nuisances.items():
        axes[0].annotate("+".join(INITIALS[name] for name in types), (frame, 1.05), fontsize=6, ha="center")
    axes[0].legend(ncol=len(curves) + 1, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.25))
    key = ", ".join(f"{initial} {name.replace('_', ' ')}" for name, initial in INITIALS.items())
    axes[-1].set_xlabel(f"frame of test video {video_id}; red: frames with a nuisance ({key})")
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), load_average()
    _, data_args, _ = parse_arguments(["--synthetic_nuisances", *args.extra])
    splits = load_from_disk(str(synthetic_dataset_dir(data_args)))
    document = json.loads(synthetic_nuisance_file(data_args).read_text())
    clip_frames = int((training_clips(splits["train"], args.temporal_window).rows >= 0).sum())
    frame_more_epochs = equal_compute_epochs(args.clip_epochs, clip_frames, len(splits["train"]))

    runs = {"frame": train(args.workdir / "frame", ["--num_train_epochs", str(args.frame_epochs), *args.extra])}
    schedule = ["--init_from", str(args.workdir / "frame"), "--learning_rate", str(args.learning_rate), *args.extra]
    for arm in args.arms:
        if arm == "frame_more":
            arguments = ["--num_train_epochs", f"{frame_more_epochs:.4f}"]
        else:
            arguments = ["--num_train_epochs", str(args.clip_epochs), "--temporal_layers", str(args.temporal_layers)]
            arguments += ["--temporal_window", str(args.temporal_window), *TEMPORAL_FLAGS[arm]]
            arguments += ["--per_device_train_batch_size", str(args.clips_per_batch)]
            arguments += ["--per_device_eval_batch_size", str(max(1, 128 // args.temporal_window))]
        runs[arm] = train(args.workdir / arm, [*schedule, *arguments])

    test = splits["test"]
    label_names = list(json.loads((args.workdir / "frame" / "config.json").read_text())["id2label"].values())
    rescores = {name: rescored(args.workdir / name, test) for name in runs}
    labels = rescores["frame"]["predictions"].labels
    masks = nuisance_masks(
        rescores["frame"]["predictions"].video_ids, rescores["frame"]["predictions"].frames, document
    )
    by_nuisance = {
        name: scores_by_nuisance(score["smoothed"], labels, masks, score["thresholds"], label_names)
        for name, score in rescores.items()
    }

    video_ids = rescores["frame"]["predictions"].video_ids
    video_id = str(max(np.unique(video_ids), key=lambda video: int((~masks["none"][video_ids == video]).sum())))
    with tempfile.TemporaryDirectory() as scratch:
        speed_models = {name: args.workdir / name for name in ("frame_more", "temporal") if name in runs}
        speed = prediction_speed(
            speed_models,
            test_video(test, list(np.unique(video_ids)[: args.speed_videos]), Path(scratch) / "video.mp4"),
            args.speed_rounds,
        )
    in_video = rescores["frame"]["predictions"].video_ids == video_id
    order = np.argsort(rescores["frame"]["predictions"].frames[in_video])
    curves = {"frame": rescores["frame_more"]["raw"], "frame, smoothed": rescores["frame_more"]["smoothed"]}
    curves |= {"temporal": rescores["temporal"]["raw"]} if "temporal" in rescores else {}
    timeline_figure(
        args.figure,
        video_id,
        rescores["frame"]["predictions"].frames[in_video][order],
        labels[in_video][order],
        {name: values[in_video][order] for name, values in curves.items()},
        label_names,
        {int(frame): types for frame, types in document["videos"].get(video_id, {}).items()},
    )

    summary = {
        name: {
            key: results[key]
            for key in ("test_mean_f1", "test_tuned_mean_f1", "tuned_mean_f1", "smoothing_window", "train_runtime")
            if key in results
        }
        | {"train_steps": results["train_steps"]}
        | {f"test_tuned_f1_{au}": results[f"test_tuned_f1_{au}"] for au in label_names}
        for name, results in runs.items()
    }
    baseline = summary["frame_more"]["test_tuned_mean_f1"] if "frame_more" in summary else None
    rows = [
        [
            name,
            values["test_mean_f1"],
            values["test_tuned_mean_f1"],
            values["smoothing_window"] or 1,
            values["train_steps"],
            values["train_runtime"],
            "" if baseline is None else values["test_tuned_mean_f1"] - baseline,
        ]
        for name, values in summary.items()
    ]
    markdown = markdown_table(
        ["run", "test F1 @0.5", "test F1 tuned", "window", "steps", "train s", "vs frame_more"], rows
    )
    markdown += "\n\n" + markdown_table(
        ["run", *masks],
        [[name, *(cell["mean_f1"] for cell in scores.values())] for name, scores in by_nuisance.items()],
    )
    payload = {
        "settings": vars(args) | {"workdir": str(args.workdir), "figure": str(args.figure)},
        "clip_frames_per_epoch": clip_frames,
        "train_rows": len(splits["train"]),
        "frame_more_epochs": frame_more_epochs,
        "runs": summary,
        "by_nuisance": by_nuisance,
        "nuisance_rows": {name: int(mask.sum()) for name, mask in masks.items()},
        "prediction_speed": speed,
        "timeline_video": video_id,
        "seconds": time.perf_counter() - started,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    report(json.loads(json.dumps(payload, default=str)), args.output, markdown)


if __name__ == "__main__":
    main()
