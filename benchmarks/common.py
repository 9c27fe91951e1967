"""Shared helpers of the benchmark scripts: interleaved timing, medians and ratios, peak RSS, machine facts.

Every comparison times its sides in one process, interleaved (A, B, A, B, ... after a warm-up of each), so a
burst of load from other processes hits every side alike; reports use medians and ratios of medians.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from modeling_au_mlt.atomic_io import write_json
from modeling_au_mlt.training.arguments import VISION_PRESETS as ENCODER_SIZES

REPO_ROOT = Path(__file__).resolve().parents[1]

# ViT encoder sizes used across the benchmarks: the library's ViT-S and ViT-B (`training.arguments.VISION_PRESETS`)
# at patch 16, and a toy size that only keeps the scripts working in CI.
VISION_PRESETS = {
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=16
    ),
    "vit-s16-112": {**ENCODER_SIZES["small"], "image_size": 112, "patch_size": 16},
    "vit-b16-224": {**ENCODER_SIZES["base"], "image_size": 224, "patch_size": 16},
}


def interleaved_rounds(
    candidates: dict[str, Callable[[], list[float]]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """The values every call of each candidate returns, over rounds A, B, C, A, B, C, ... after `warmup` calls of each.

    The order rotates every round so that no candidate always follows the same neighbour.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    values = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            values[name] += candidates[name]()
    return values


def interleaved_times(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> tuple[dict, dict]:
    """(wall, cpu): seconds of each call of each candidate, interleaved as in `interleaved_rounds`.

    `cpu` is this process's CPU time (all threads): on a machine shared with other jobs, wall time also
    measures them, while CPU time of a single-threaded run measures only the candidate.
    """

    def timed(function: Callable[[], object]) -> Callable[[], list[tuple[float, float]]]:
        def call() -> list[tuple[float, float]]:
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            return [(time.perf_counter() - wall, time.process_time() - cpu)]

        return call

    pairs = interleaved_rounds({name: timed(function) for name, function in candidates.items()}, repeats, warmup)
    return {name: [p[0] for p in values] for name, values in pairs.items()}, {
        name: [p[1] for p in values] for name, values in pairs.items()
    }


def set_threads(threads: int | None) -> None:
    """Use `threads` torch threads (None keeps torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(statistics.median(values))


def spread(values: list[float]) -> float:
    """Relative half-range of the middle half (interquartile range / 2 / median): the noise of a timing."""
    if len(values) < 4:
        return (max(values) - min(values)) / 2 / statistics.median(values)
    quartiles = statistics.quantiles(values, n=4)
    return (quartiles[2] - quartiles[0]) / 2 / statistics.median(values)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    Linux's `ru_maxrss` survives `exec`: a child started by a large parent reports at least the parent's
    size at fork. `VmHWM` belongs to the current address space only, so it is read where available.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages of the machine."""
    return os.getloadavg()


def machine_description() -> dict:
    """Cores, CPU, library versions and torch threads: the context every reported number needs."""
    import transformers

    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu_model = models[0] if models else cpu_model
    return {
        "cpu": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in load_average()],
    }


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats keep 3 significant digits."""

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def run_json_subprocess(script: Path, args: list[str]) -> dict:
    """Run `python script *args` in a fresh interpreter and return the JSON object it prints last."""
    python_path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO_ROOT)]))
    environment = {**os.environ, "PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{script.name} {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def report(payload: dict, output: str | None, markdown: str) -> None:
    """Print the markdown summary and write the JSON payload (with the machine description) to `output`."""
    print(markdown)
    if output:
        write_json(output, {"machine": machine_description(), **payload})
