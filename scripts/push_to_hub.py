"""Upload a trained AU-MLT folder to the Hugging Face Hub.

    python scripts/push_to_hub.py --model_dir au-mlt-synthetic --repo_id your-org/au-mlt [--private]

Sends the Hub-ready files only (no checkpoints or pickles). Offline or unauthenticated, it exits with a
message saying so and leaves the folder untouched.
"""

import argparse
import sys

from modeling_au_mlt.hub.publish import PublishError, push_model_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="folder written by scripts/train.py")
    parser.add_argument("--repo_id", required=True, help="Hub model repository, e.g. your-org/au-mlt")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one or HF_TOKEN)")
    args = parser.parse_args(argv)
    try:
        url = push_model_folder(args.model_dir, args.repo_id, private=args.private, token=args.token)
    except (PublishError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.model_dir} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
