"""Convert the ABAW AU-detection release (cropped_aligned images + AU label files) to a DatasetDict.

python scripts/prepare_abaw.py --images_dir CROPPED_ALIGNED --annotations_dir AU_DETECTION_CHALLENGE \
    --output_dir OUT [--num_proc N] [--subsample K] [--on_error raise|skip] [--push_to_hub REPO_ID] [--test_list FILE]
"""

import argparse
import sys

from modeling_au_mlt.console_logging import configure_logging
from modeling_au_mlt.data.abaw import prepare_abaw
from modeling_au_mlt.data.conversion import add_common_arguments, common_options, exit_code


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images_dir", required=True, help="cropped_aligned/ folder: <video>/<frame:05d>.jpg")
    parser.add_argument(
        "--annotations_dir",
        required=True,
        help="folder holding Train_Set/ and Validation_Set/ (and Test_Set/ if labelled)",
    )
    add_common_arguments(parser)
    parser.add_argument("--test_list", default=None, help="text file of test video names, one a line -> split 'test'")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging(info_to_stdout=True)  # the report table on stdout, errors on stderr
    return exit_code(
        lambda: prepare_abaw(
            args.images_dir,
            args.annotations_dir,
            args.output_dir,
            test_list=args.test_list,
            **common_options(args),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
