"""Converter at scale (issue 6, section 4): `prepare_abaw.py` rows/s and peak RSS as frames grow.

Generates ABAW-layout trees (labels with all -1 rows and frames without images, like the release) of
growing size, runs the real command line on each in a child process, and reports rows/s and peak RSS.
Tree generation is cheap: a handful of JPEGs are encoded once and hard-linked into every frame slot.

Peak RSS is measured two ways: `os.wait4` on the converter process gives the largest single process of
its tree (the kernel folds in the reaped worker processes), and, when psutil is installed, the sum of
RSS over the process tree sampled every 0.2 s (an upper bound: forked workers share pages).

    python benchmarks/bench_converter.py              # 20k and 200k frames (112 px), 2M frames (tiny images)
    python benchmarks/bench_converter.py --quick      # under 2 minutes
    python benchmarks/bench_converter.py --tiny       # seconds, for CI
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
AUS = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
# (frames, image side in px, frames per video)
PRESETS = {
    "full": [(20_000, 112, 2_000), (200_000, 112, 2_000), (2_000_000, 8, 5_000)],
    "quick": [(5_000, 112, 1_000), (20_000, 112, 2_000), (100_000, 8, 5_000)],
    "tiny": [(400, 32, 100)],
}
DISTINCT_IMAGES = 16
MAX_LINKS = 50_000  # hard links per source file before a fresh set is written

try:
    import psutil
except ImportError:  # optional: only the sampled tree RSS needs it
    psutil = None


def jpeg_bytes(side: int, seed: int) -> bytes:
    """A smooth random image (face-crop-like JPEG size), encoded once."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).resize((side, side), Image.BILINEAR)
    noisy = np.clip(np.asarray(coarse, dtype=np.int16) + rng.integers(-6, 7, size=(side, side, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_sources(folder: Path, encoded: list[bytes]) -> list[Path]:
    """Fresh files to hard-link frames to (a file takes at most ~65k links on ext4)."""
    folder.mkdir(parents=True)
    paths = [folder / f"{number}.jpg" for number in range(len(encoded))]
    for path, data in zip(paths, encoded):
        path.write_bytes(data)
    return paths


def label_lines(rng: np.random.Generator, frames: int) -> list[str]:
    """Random 0/1 labels; 2% rows all -1 and 1% single -1 entries, as in the release."""
    labels = (rng.random((frames, len(AUS))) < 0.25).astype(np.int8)
    labels[rng.random(frames) < 0.02] = -1
    single = rng.random(frames) < 0.01
    labels[single, rng.integers(0, len(AUS), size=int(single.sum()))] = -1
    return [",".join(map(str, row)) for row in labels.tolist()]


def make_tree(root: Path, frames: int, side: int, per_video: int, seed: int = 0) -> tuple[Path, Path]:
    """Write `frames` annotated frames (80% train, 20% validation) in the ABAW layout; 1% lack an image."""
    images, annotations = root / "cropped_aligned", root / "AU_Detection_Challenge"
    encoded = [jpeg_bytes(side, seed + number) for number in range(DISTINCT_IMAGES)]
    sources: list[Path] = []
    links = 0
    rng = np.random.default_rng(seed)
    videos = max(1, frames // per_video)
    for video in range(videos):
        count = per_video if video < videos - 1 else frames - per_video * (videos - 1)
        split = "Train_Set" if video < max(1, int(videos * 0.8)) else "Validation_Set"
        name = f"video{video:05d}" + ("_left" if video % 10 == 9 else "")
        (annotations / split).mkdir(parents=True, exist_ok=True)
        (annotations / split / f"{name}.txt").write_text("\n".join([",".join(AUS)] + label_lines(rng, count)) + "\n")
        folder = images / name
        folder.mkdir(parents=True)
        present = rng.random(count) >= 0.01
        if not sources or links + count > DISTINCT_IMAGES * MAX_LINKS:
            sources, links = write_sources(root / "pool" / str(video), encoded), 0
        for frame in np.flatnonzero(present) + 1:
            os.link(sources[frame % DISTINCT_IMAGES], folder / f"{frame:05d}.jpg")
        links += count
    return images, annotations


def tree_rss(process_id: int) -> int:
    """Sum of RSS (bytes) over a process and its descendants, 0 if it has gone."""
    try:
        parent = psutil.Process(process_id)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.Error:
        return 0


def run_converter(images: Path, annotations: Path, output: Path, num_proc: int) -> dict:
    """Run scripts/prepare_abaw.py once; wall time, peak RSS (largest process, sampled tree sum), report."""
    command = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "prepare_abaw.py"),
        "--images_dir",
        str(images),
        "--annotations_dir",
        str(annotations),
        "--output_dir",
        str(output),
        "--num_proc",
        str(num_proc),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_tree, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak_tree[0] = max(peak_tree[0], tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    if psutil is not None:
        sampler.start()
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"prepare_abaw.py failed ({process.returncode}): {' '.join(command)}\n{stdout}")
    report = json.loads((output / "prepare_report.json").read_text())
    rows = sum(split["frames"] for split in report["splits"].values())
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "peak_tree_rss_mib": round(peak_tree[0] / 2**20, 1) if psutil is not None else None,
        "output_mib": round(sum(f.stat().st_size for f in output.rglob("*") if f.is_file()) / 2**20, 1),
    }


def bench(preset: str, num_proc: int, workdir: Path) -> list[dict]:
    """Generate and convert each size of the preset, deleting each tree before the next."""
    results = []
    for frames, side, per_video in PRESETS[preset]:
        root = Path(tempfile.mkdtemp(prefix=f"bench_converter_{frames}_", dir=workdir))
        try:
            start = time.perf_counter()
            images, annotations = make_tree(root, frames, side, per_video)
            generated = time.perf_counter() - start
            result = run_converter(images, annotations, root / "out", num_proc)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        setting = {"frames": frames, "image_px": side, "num_proc": num_proc, "tree_s": round(generated, 1)}
        results.append({**setting, **result})
        print(json.dumps(results[-1]), flush=True)
    return results


def markdown(results: list[dict]) -> str:
    """Results as a markdown table."""
    keys = [
        "frames",
        "image_px",
        "num_proc",
        "rows",
        "seconds",
        "rows_per_s",
        "peak_rss_mib",
        "peak_tree_rss_mib",
        "output_mib",
    ]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(result[key]) for key in keys) + " |" for result in results]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    size.add_argument("--tiny", action="store_true", help="seconds, to keep the script working in CI")
    parser.add_argument("--num_proc", type=int, default=2, help="--num_proc passed to prepare_abaw.py")
    parser.add_argument("--workdir", default=None, help="where trees are generated (default: system temp)")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    results = bench(preset, args.num_proc, Path(args.workdir or tempfile.gettempdir()))
    print(markdown(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
