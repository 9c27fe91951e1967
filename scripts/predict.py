"""Detect facial Action Units in images, folders of images and videos; one CSV per input.

    python scripts/predict.py INPUT [INPUT ...] --model DIR_OR_HUB_ID --output_dir OUT \
        [--no_detect] [--attention_maps] [--batch_size B] [--smooth W] [--causal] [--device cpu|cuda] \
        [--backend pytorch|onnx]

Writes OUT/<stem>.csv (one row per face and frame), and with --attention_maps the attention figures
and, for videos, OUT/<stem>_timeline.png. A temporal model (temporal_layers > 0) scores each tracked face of
a video with its neighbouring frames (past frames only with --causal); photos and image folders are single
frames. A bad input is reported on stderr and skipped; the exit status is 1 if any input (or frame of a folder)
failed.

With --backend onnx, --model is a folder written by scripts/export_onnx.py and ONNX Runtime runs it on the CPU
(--device cuda is refused); --attention_maps needs an export made with --with_attention. Temporal models have no
ONNX export.
"""

import argparse
import sys

from modeling_au_mlt.console_logging import configure_logging
from modeling_au_mlt.inference.predictor import DEFAULT_ATTENTION_EVERY, AUPredictor, FramePredictor, Prediction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders of images, videos (mp4/avi/mov/mkv)"
    )
    parser.add_argument("--model", required=True, help="a saved AU-MLT folder or a (cached) Hub id")
    parser.add_argument("--output_dir", required=True, help="folder for the CSVs and figures")
    parser.add_argument("--no_detect", action="store_true", help="take every input as an already-cropped face")
    parser.add_argument("--attention_maps", action="store_true", help="draw where each AU looks, and video timelines")
    parser.add_argument(
        "--attention_every",
        type=int,
        default=DEFAULT_ATTENTION_EVERY,
        help="with --attention_maps, draw every N-th frame of a video or folder (default %(default)s)",
    )
    parser.add_argument("--batch_size", type=int, default=32, help="frames per model batch (default %(default)s)")
    parser.add_argument(
        "--smooth",
        type=int,
        default=None,
        help="moving-average window in frames, per face, in videos (default: the model's smoothing_window, else 1)",
    )
    parser.add_argument(
        "--causal",
        action="store_true",
        help="each frame's output from that frame and earlier ones only: a temporal model sees past frames only, "
        "and videos are not smoothed (a frame model scores each frame alone already)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available (the onnx backend: cpu)"
    )
    parser.add_argument(
        "--backend",
        choices=("pytorch", "onnx"),
        default="pytorch",
        help="pytorch: --model is a saved AU-MLT folder or Hub id; onnx: an export folder of scripts/export_onnx.py, "
        "run with ONNX Runtime on the CPU (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("batch_size", "attention_every") + (("smooth",) if args.smooth is not None else ()):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.causal and (args.smooth or 1) > 1:
        parser.error("--smooth averages over later frames too; --causal uses past frames only")
    if args.backend == "onnx" and args.device == "cuda":
        parser.error("--device cuda: the onnx backend runs on the CPU; use --backend pytorch for a GPU")
    return args


def load_predictor(args: argparse.Namespace) -> FramePredictor:
    """The model of `--model` for `--backend`; an ONNX export is checked for attention if maps are asked for."""
    if args.backend == "pytorch":
        return AUPredictor(args.model, device=args.device)
    from modeling_au_mlt.inference.onnx_predictor import ONNXPredictor  # needs the optional onnx packages

    predictor = ONNXPredictor(args.model)
    if args.attention_maps:
        predictor.require_attention()
    return predictor


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()  # failures, warnings and the summary on stderr
    try:
        predictor = load_predictor(args)
    except (OSError, ValueError) as error:  # a missing or wrong model folder, an export without attention
        print(f"error: {error}", file=sys.stderr)
        return 1
    prediction = Prediction(
        predictor,
        args.output_dir,
        detect=not args.no_detect,
        attention_maps=args.attention_maps,
        attention_every=args.attention_every,
        batch_size=args.batch_size,
        smooth=args.smooth,
        progress=not args.quiet,
        causal=args.causal,
    )
    return 1 if prediction.run(args.inputs) else 0


if __name__ == "__main__":
    sys.exit(main())
