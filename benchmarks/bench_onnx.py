"""ONNX Runtime against PyTorch eager: images/s of the model alone and frames/s of video prediction end to end.

    PYTHONPATH=. python benchmarks/bench_onnx.py --output docs/results/full/onnx.json   # ViT-S/16 112 px
    PYTHONPATH=. python benchmarks/bench_onnx.py --quick    # same model, fewer rounds and a shorter video
    PYTHONPATH=. python benchmarks/bench_onnx.py --tiny     # a 32-px toy model: seconds, for CI

A random AU-MLT (speed does not depend on the weights) is saved with `save_for_hub` and exported with
`export_onnx` (no attention output). The two backends are what `scripts/predict.py` runs: `AUPredictor` (the
model as users load it: default SDPA attention, fp32, `torch.inference_mode`) and `ONNXPredictor` (ONNX Runtime,
CPU provider, every graph optimisation, as many threads as torch). Both sides run in one process, interleaved
(`common.interleaved_times`), on the same pixels: first the model alone at each batch size, then whole prediction
runs (`Prediction`, one loader worker, as `predict.py` runs) over a synthetic video of Grace Hopper's portrait
(`bench_video.synthetic_face_frames`). Reported: medians, the ONNX Runtime / PyTorch speed ratio and the spread
(IQR / 2 / median) of each side. Run it alone on the machine: other jobs change both sides' speed, and not alike.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks.bench_video import VISION, synthetic_face_frames, write_video
from benchmarks.common import (
    interleaved_rounds,
    interleaved_times,
    load_average,
    markdown_table,
    median,
    report,
    set_threads,
    spread,
)
from modeling_au_mlt import AUMLTConfig, AUMLTModel
from modeling_au_mlt.hub.folder import save_for_hub
from modeling_au_mlt.inference.onnx_export import export_onnx
from modeling_au_mlt.inference.onnx_predictor import ONNXPredictor
from modeling_au_mlt.inference.predictor import AUPredictor, FramePredictor, Prediction

SETTINGS = {
    "full": dict(model="vit-s16-112", batch_sizes=[1, 32], repeats=15, seconds=12, fps=25, size=(480, 640), rounds=3),
    "quick": dict(model="vit-s16-112", batch_sizes=[1, 32], repeats=5, seconds=4, fps=25, size=(480, 640), rounds=1),
    "tiny": dict(model="toy-32", batch_sizes=[1, 4], repeats=2, seconds=2, fps=10, size=(240, 320), rounds=1),
}
BACKENDS = ("pytorch", "onnx")


def predictors(model_name: str, work_dir: Path) -> tuple[dict[str, FramePredictor], dict]:
    """Both backends' predictors of one random model, and the export's record (its check's differences)."""
    torch.manual_seed(0)
    model_dir = save_for_hub(AUMLTModel(AUMLTConfig(vision_config=VISION[model_name])).eval(), work_dir / "model")
    record = export_onnx(model_dir, work_dir / "onnx")
    return {"pytorch": AUPredictor(model_dir, device="cpu"), "onnx": ONNXPredictor(work_dir / "onnx")}, record


def ratio_row(values: dict[str, list[float]], rate: float) -> dict:
    """Median rate (`rate` / median seconds) and spread of each backend, and ONNX Runtime's speed over PyTorch's."""
    medians = {name: median(values[name]) for name in BACKENDS}
    return {
        "per_second": {name: rate / medians[name] for name in BACKENDS},
        "spread": {name: spread(values[name]) for name in BACKENDS},
        "onnx_speedup": medians["pytorch"] / medians["onnx"],
    }


def model_speed(backends: dict[str, FramePredictor], image_size: int, batch_size: int, repeats: int) -> dict:
    """Images/s of each backend's `probabilities` on one batch of random pixels, interleaved."""
    pixel_values = torch.randn(batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    candidates = {name: (lambda p=predictor: p.probabilities(pixel_values)) for name, predictor in backends.items()}
    wall, cpu = interleaved_times(candidates, repeats=repeats)
    return {
        "batch_size": batch_size,
        "repeats": repeats,
        "wall": ratio_row(wall, batch_size),
        "cpu": ratio_row(cpu, batch_size),
    }


def video_speed(backends: dict[str, FramePredictor], video: Path, work_dir: Path, rounds: int) -> dict:
    """Frames/s of whole prediction runs over `video` with each backend (one loader worker), interleaved, and
    every timed run's summary (`Prediction.stats`: seconds per stage, model threads)."""

    def run(name: str) -> list[dict]:
        prediction = Prediction(backends[name], work_dir / f"out-{name}", batch_size=32, num_workers=1, progress=False)
        if prediction.run([video]):
            raise RuntimeError(f"{video}: prediction with the {name} backend reported failures")
        return [prediction.stats]

    runs = interleaved_rounds({name: (lambda name=name: run(name)) for name in BACKENDS}, rounds)
    seconds_per_frame = {name: [stats["seconds"] / stats["frames"] for stats in runs[name]] for name in BACKENDS}
    return {"rounds": rounds, **ratio_row(seconds_per_frame, 1.0), "runs": runs}


def measure(setting: str, work_dir: Path) -> dict:
    """Export, then the model-alone and end-to-end comparisons of `setting`."""
    config = SETTINGS[setting]
    backends, record = predictors(config["model"], work_dir)
    image_size = VISION[config["model"]]["image_size"]
    model = [model_speed(backends, image_size, batch, config["repeats"]) for batch in config["batch_sizes"]]
    num_frames = config["seconds"] * config["fps"]
    frames = synthetic_face_frames(
        num_frames, range(0), size=config["size"], portrait_width=config["size"][1] * 2 // 5
    )
    video = write_video(work_dir / "synthetic.mp4", frames, fps=config["fps"], codec="mp4v")
    return {
        "model": config["model"],
        "export": record,
        "model_alone": model,
        "video": {
            "frames": num_frames,
            "size": config["size"],
            **video_speed(backends, video, work_dir, config["rounds"]),
        },
    }


def summary(result: dict) -> str:
    """Markdown table: images/s (model alone) and frames/s (video) of both backends, ratio and spread."""
    rows = [
        [
            f"model alone, batch {row['batch_size']}",
            row["wall"]["per_second"]["pytorch"],
            row["wall"]["per_second"]["onnx"],
            f"{row['wall']['onnx_speedup']:.2f}x",
            f"{row['cpu']['onnx_speedup']:.2f}x",
            f"{100 * row['wall']['spread']['pytorch']:.0f}% / {100 * row['wall']['spread']['onnx']:.0f}%",
        ]
        for row in result["model_alone"]
    ]
    video = result["video"]
    rows.append(
        [
            f"video end to end ({video['frames']} frames)",
            video["per_second"]["pytorch"],
            video["per_second"]["onnx"],
            f"{video['onnx_speedup']:.2f}x",
            "",
            f"{100 * video['spread']['pytorch']:.0f}% / {100 * video['spread']['onnx']:.0f}%",
        ]
    )
    headers = ["what", "PyTorch /s", "ONNX Runtime /s", "ORT speed-up", "same, CPU time", "spread PyTorch / ORT"]
    return f"{result['model']}, {torch.get_num_threads()} threads\n\n" + markdown_table(headers, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer rounds and a 4 s video")
    size.add_argument("--tiny", action="store_true", help="a 32-px toy model that runs in seconds (CI)")
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's, one per core)")
    parser.add_argument("--output", help="write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    setting = "tiny" if args.tiny else "quick" if args.quick else "full"
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as work_dir:
        result = measure(setting, Path(work_dir))
    payload = {"section": "onnx", "setting": setting, "load_average_before": load_before, **result}
    report(payload, args.output, summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
