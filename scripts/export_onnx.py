"""Export a saved AU-MLT frame model to ONNX and check the export against PyTorch on real face crops.

    python scripts/export_onnx.py --model DIR_OR_HUB_ID --output DIR [--opset N] [--with_attention]

Writes DIR/model.onnx (input `pixel_values` with a dynamic batch, output `logits`, and with --with_attention the
last decoder layer's `cross_attention`, needed by `predict.py --attention_maps`), the config and image processor
beside it, and DIR/onnx_export.json with the check's largest differences. The export must match PyTorch within
1e-4 on face crops of a real photo at batch 1 and 4; otherwise it exits 1 and writes nothing. Temporal models
(temporal_layers > 0) are refused. Run the export with `python scripts/predict.py ... --backend onnx --model DIR`.
"""

import argparse
import json
import sys

from modeling_au_mlt.inference.onnx_export import DEFAULT_OPSET, ONNXExportError, export_onnx


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved AU-MLT folder or a (cached) Hub id")
    parser.add_argument("--output", required=True, help="folder for model.onnx, its config and image processor")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    parser.add_argument(
        "--with_attention", action="store_true", help="also output the last layer's cross-attention weights"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        record = export_onnx(args.model, args.output, opset=args.opset, with_attention=args.with_attention)
    except (ONNXExportError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.output}/model.onnx; largest differences to PyTorch: {json.dumps(record['max_abs_difference'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
