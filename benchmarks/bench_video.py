"""End-to-end video inference speed (benchmark 7 of issue 6): frames/s of the prediction pipeline that
`scripts/predict.py` runs, on a synthetic video, split into decoding, face detection, model and writing.

    python benchmarks/bench_video.py            # 30 s at 25 fps, 640x480; ViT-Ti/16 and ViT-S/16 at 112 px
    python benchmarks/bench_video.py --quick    # 10 s video, same models
    python benchmarks/bench_video.py --tiny     # 2 s at 10 fps, a 32-px toy model: seconds, for CI

The video is Grace Hopper's portrait (matplotlib's sample data) drifting across a grey frame, with one
second without a face. Models are random (speed does not depend on the weights). Decoding and detection
run in the DataLoader's worker beside the model (`workers=1`), or in the main process (`workers=0`); the
stage times are each stage's own seconds, so with a worker they overlap and add up to more than the total.
Each stage's CPU seconds are measured too (thread CPU time: with one worker and one model thread each
stage runs in one thread), because on a shared machine the wall-clock numbers also measure the other
processes; "frames/s from CPU s" is the rate those CPU seconds allow on two otherwise idle cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from matplotlib import cbook

from benchmarks.common import VISION_PRESETS
from modeling_au_mlt import AUMLTConfig, AUMLTModel
from modeling_au_mlt.atomic_io import write_json
from modeling_au_mlt.hub.folder import save_for_hub
from modeling_au_mlt.inference.media import open_media
from modeling_au_mlt.inference.predictor import AUPredictor, Prediction
from modeling_au_mlt.training.arguments import VISION_PRESETS as ENCODER_SIZES

VISION = {
    "toy-32": {**VISION_PRESETS["tiny"], "patch_size": 8},
    "vit-ti16-112": {**ENCODER_SIZES["tiny"], "image_size": 112, "patch_size": 16},
    "vit-s16-112": VISION_PRESETS["vit-s16-112"],
}
SETTINGS = {
    "full": dict(seconds=30, fps=25, size=(480, 640), models=["vit-ti16-112", "vit-s16-112"], workers=[0, 1]),
    "quick": dict(seconds=10, fps=25, size=(480, 640), models=["vit-ti16-112", "vit-s16-112"], workers=[1]),
    "tiny": dict(seconds=2, fps=10, size=(240, 320), models=["toy-32"], workers=[1]),
}


def synthetic_face_frames(
    num_frames: int, blank: range, size=(240, 320), portrait_width: int = 128
) -> list[np.ndarray]:
    """RGB frames `size`: Grace Hopper's portrait drifting right by 2 px a frame, plain grey frames at `blank`."""
    photo = cv2.cvtColor(
        cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB
    )
    portrait_height = portrait_width * photo.shape[0] // photo.shape[1]
    portrait = cv2.resize(photo, (portrait_width, portrait_height), interpolation=cv2.INTER_AREA)
    frames = []
    for index in range(num_frames):
        frame = np.full((*size, 3), 90, np.uint8)
        if index not in blank:
            x = (size[1] // 8 + 2 * index) % max(1, size[1] - portrait_width)
            frame[10 : 10 + portrait_height, x : x + portrait_width] = portrait
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0, codec: str = "MJPG") -> Path:
    """A video of RGB `frames` (MJPG in .avi by default; "mp4v" for .mp4)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def decode_seconds(video: Path) -> float:
    """Seconds to decode every frame of `video` alone (part of the worker's decode+detect time)."""
    started = time.perf_counter()
    for _ in open_media(video):
        pass
    return time.perf_counter() - started


def measure(model_dir: Path, video: Path, workers: int, output_dir: Path, batch_size: int) -> dict:
    """One prediction run over `video`: its summary numbers plus model loading time."""
    started = time.perf_counter()
    predictor = AUPredictor(model_dir, device="cpu")
    load_seconds = time.perf_counter() - started
    prediction = Prediction(predictor, output_dir, batch_size=batch_size, num_workers=workers, progress=False)
    if prediction.run([video]):
        raise RuntimeError(f"{video}: prediction reported failures")
    stats = dict(prediction.stats, load_seconds=load_seconds)
    stats["frames_per_second"] = stats["frames"] / stats["seconds"]
    return stats


def run(setting: str, work_dir: Path, batch_size: int) -> list[dict]:
    """Every model x workers combination of `setting` on one synthetic video."""
    config = SETTINGS[setting]
    num_frames = config["seconds"] * config["fps"]
    blank = range(num_frames // 3, num_frames // 3 + config["fps"])  # one second without a face
    frames = synthetic_face_frames(num_frames, blank, size=config["size"], portrait_width=config["size"][1] * 2 // 5)
    video = write_video(work_dir / "synthetic.mp4", frames, fps=config["fps"], codec="mp4v")
    decoding = decode_seconds(video)
    rows = []
    for name in config["models"]:
        torch.manual_seed(0)
        model_dir = save_for_hub(AUMLTModel(AUMLTConfig(vision_config=VISION[name])).eval(), work_dir / name)
        for workers in config["workers"]:
            stats = measure(model_dir, video, workers, work_dir / f"out-{name}-{workers}", batch_size)
            rows.append({"model": name, "workers": workers, "decode_seconds": decoding, **stats})
    return rows


def cpu_bound_rate(row: dict) -> float:
    """Frames/s that the measured CPU seconds allow on 2 free cores: decoding and detection on one core
    (the loader's worker), model and writing on the other; the slower side sets the pace."""
    worker = row["decode+detect_cpu_seconds"]
    main = row["model_cpu_seconds"] + row["writing_cpu_seconds"]
    return row["frames"] / max(worker, main)


def markdown_table(rows: list[dict]) -> str:
    """The measurements as a Markdown table (wall-clock seconds, CPU seconds in brackets)."""
    lines = [
        "| model | workers | model threads | frames | frames/s end to end | total s | decode s "
        "| decode+detect s (CPU) | model s (CPU) | writing s (CPU) | frames/s from CPU s, 2 free cores | load s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        estimate = cpu_bound_rate(r) if r["workers"] and r["model_threads"] == 1 else float("nan")
        lines.append(
            f"| {r['model']} | {r['workers']} | {r['model_threads']} | {r['frames']} | {r['frames_per_second']:.1f} | "
            f"{r['seconds']:.1f} | {r['decode_seconds']:.1f} | {r['decode+detect_seconds']:.1f} "
            f"({r['decode+detect_cpu_seconds']:.1f}) | {r['model_seconds']:.1f} ({r['model_cpu_seconds']:.1f}) | "
            f"{r['writing_seconds']:.2f} ({r['writing_cpu_seconds']:.2f}) | "
            f"{estimate:.1f} | {r['load_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10 s video instead of 30 s")
    size.add_argument("--tiny", action="store_true", help="2 s toy setting that runs in seconds (CI)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    setting = "tiny" if args.tiny else "quick" if args.quick else "full"
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_video_") as work_dir:
        rows = run(setting, Path(work_dir), args.batch_size)
    print(
        f"setting {setting}: {SETTINGS[setting]}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(markdown_table(rows))
    if args.json:
        write_json(args.json, {"setting": setting, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
