"""Convert a CSV of frames (image path column + one column per AU) to the same DatasetDict as prepare_abaw.py.

python scripts/prepare_csv.py --csv FRAMES.csv --output_dir OUT [--image_root DIR] [--image_column image]
    [--label_columns AU1,AU2,...] [--split_column split] [--video_column video] [--frame_column frame]
    [--num_proc N] [--subsample K] [--on_error raise|skip] [--push_to_hub REPO_ID]
"""

import argparse
import sys

from modeling_au_mlt.console_logging import configure_logging
from modeling_au_mlt.data.conversion import add_common_arguments, common_options, exit_code
from modeling_au_mlt.data.tabular import prepare_csv


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", required=True, help="CSV with a header row, one row per frame")
    parser.add_argument("--image_root", default=None, help="base of relative image paths (default: CSV folder)")
    parser.add_argument("--image_column", default="image", help="column holding each frame's image path")
    parser.add_argument("--label_columns", default=None, help="comma-separated AU columns (default: AU<n> columns)")
    parser.add_argument("--split_column", default=None, help="column naming each row's split (default: all train)")
    parser.add_argument("--video_column", default=None, help="column naming each row's video (default: image folder)")
    parser.add_argument("--frame_column", default=None, help="column with frame numbers (default: from the file name)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging(info_to_stdout=True)  # the report table on stdout, errors on stderr
    return exit_code(
        lambda: prepare_csv(
            args.csv,
            args.output_dir,
            image_root=args.image_root,
            split_column=args.split_column,
            image_column=args.image_column,
            label_columns=args.label_columns.split(",") if args.label_columns else None,
            video_column=args.video_column,
            frame_column=args.frame_column,
            **common_options(args),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
