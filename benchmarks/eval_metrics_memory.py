"""Memory of AU F1 evaluation: batch-wise `compute_metrics` (Trainer `batch_eval_metrics=True`) against
scoring all logits at once, on an ABAW-sized validation split (445,845 frames x 12 AUs by default).

    python benchmarks/eval_metrics_memory.py [--frames N] [--batch_size B]

Goal: the batch-wise peak stays at the size of one batch, independent of the number of frames.
"""

import argparse
import time
import tracemalloc

import numpy as np
from transformers import EvalPrediction

from modeling_au_mlt import ABAW_AUS
from modeling_au_mlt.evaluation.metrics import AUComputeMetrics


def batches(frames: int, batch_size: int, seed: int = 0):
    """Random float32 logits and 1/0/-1 labels, one batch at a time, as the Trainer's eval loop yields them.

    numpy arrays rather than tensors so that tracemalloc sees every allocation (torch's allocator is not traced).
    """
    rng = np.random.default_rng(seed)
    for start in range(0, frames, batch_size):
        size = min(batch_size, frames - start)
        logits = rng.standard_normal((size, len(ABAW_AUS)), dtype=np.float32)
        yield logits, rng.integers(-1, 2, (size, len(ABAW_AUS))).astype(np.float32)


def peak_batchwise(frames: int, batch_size: int) -> tuple[float, float, dict]:
    """Peak traced MiB, seconds and scores of batch-wise scoring."""
    compute_metrics = AUComputeMetrics(ABAW_AUS)
    total = -(-frames // batch_size)
    tracemalloc.start()
    started = time.perf_counter()
    for step, (logits, labels) in enumerate(batches(frames, batch_size)):
        scores = compute_metrics(
            EvalPrediction(predictions=logits, label_ids=labels), compute_result=step == total - 1
        )
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak, seconds, scores


def peak_one_shot(frames: int, batch_size: int) -> tuple[float, float, dict]:
    """Peak traced MiB, seconds and scores when all logits are concatenated first (no batch_eval_metrics)."""
    tracemalloc.start()
    started = time.perf_counter()
    logits, labels = zip(*batches(frames, batch_size))
    prediction = EvalPrediction(predictions=np.concatenate(logits), label_ids=np.concatenate(labels))
    scores = AUComputeMetrics(ABAW_AUS)(prediction)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak, seconds, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=445_845)
    parser.add_argument("--batch_size", type=int, default=256)
    args = parser.parse_args()
    batch_peak, batch_seconds, batch_scores = peak_batchwise(args.frames, args.batch_size)
    full_peak, full_seconds, full_scores = peak_one_shot(args.frames, args.batch_size)
    if not np.isclose(batch_scores["mean_f1"], full_scores["mean_f1"]):
        raise SystemExit(f"scores differ: {batch_scores['mean_f1']} vs {full_scores['mean_f1']}")
    print(f"frames {args.frames}, batch {args.batch_size}, mean F1 {batch_scores['mean_f1']:.4f} both ways")
    print(f"batch-wise: peak {batch_peak:.2f} MiB traced, {batch_seconds:.2f} s")
    print(f"one shot:   peak {full_peak:.2f} MiB traced, {full_seconds:.2f} s")


if __name__ == "__main__":
    main()
