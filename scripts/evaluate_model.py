"""Score a saved AU-MLT model on a split of a converted dataset with the ABAW AU metric.

    python scripts/evaluate_model.py --model runs/au-mlt --dataset_dir data/abaw --split validation \
        --tune_thresholds --output_json runs/au-mlt/eval_validation.json

Prints the per-AU table (F1, precision, recall at threshold 0.5, with the model's stored thresholds
and smoothing window if any, and tuned on this split with --tune_thresholds), and writes the JSON plus
`<stem>_f1.png` (per-AU F1 bars) and `<stem>_pr_curves.png` (precision-recall curves) next to it.
"""

import argparse
from pathlib import Path

import torch
from datasets import DatasetDict, load_from_disk
from transformers import AutoImageProcessor, AutoModel

from modeling_au_mlt.evaluation.prediction import predict_split
from modeling_au_mlt.evaluation.report import evaluation_report, report_table, write_report
from modeling_au_mlt.evaluation.tuning import SMOOTHING_WINDOWS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved model folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument(
        "--dataset_dir", required=True, help="DatasetDict folder from prepare_abaw.py / prepare_csv.py"
    )
    parser.add_argument("--split", default="validation", help="split to score (default: validation)")
    parser.add_argument(
        "--tune_thresholds",
        action="store_true",
        help="also tune per-AU thresholds (and the smoothing window, for videos) on this split",
    )
    parser.add_argument(
        "--smoothing_windows",
        type=int,
        nargs="*",
        default=list(SMOOTHING_WINDOWS),
        help="moving-average windows tried by --tune_thresholds (default 5 7 ... 25; none: no smoothing)",
    )
    parser.add_argument(
        "--output_json",
        type=Path,
        default=None,
        help="report path (default: eval_<split>.json in the current folder); PNGs go next to it",
    )
    parser.add_argument("--batch_size", type=int, default=32, help="frames per forward pass (default: 32)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_from_disk(args.dataset_dir)
    if not isinstance(dataset, DatasetDict) or args.split not in dataset:
        available = list(dataset) if isinstance(dataset, DatasetDict) else "none (a single Dataset)"
        raise SystemExit(f"{args.dataset_dir}: no split {args.split!r}; splits: {available}")
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True).to(args.device)
    image_processor = AutoImageProcessor.from_pretrained(args.model)
    predictions = predict_split(model, dataset[args.split], image_processor, batch_size=args.batch_size)
    report = evaluation_report(
        predictions,
        model.config.label_names,
        model_thresholds=model.config.thresholds,
        model_window=model.config.smoothing_window,
        tune=args.tune_thresholds,
        windows=args.smoothing_windows,
    )
    report = {"model": args.model, "dataset_dir": str(args.dataset_dir), "split": args.split} | report
    written = write_report(report, predictions, args.output_json or Path(f"eval_{args.split}.json"))
    print(report_table(report))
    print("wrote " + ", ".join(str(path) for path in written.values()))


if __name__ == "__main__":
    main()
