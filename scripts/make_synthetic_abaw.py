"""Write a synthetic AU benchmark in the ABAW release layout (faces, label files, regions.json).

    python scripts/make_synthetic_abaw.py --output_dir OUT --train_videos N --val_videos M \
        --frames_per_video F --seed S [--test_videos K] [--image_size 112] [--num_proc 2] [--preview OUT.png] \
        [--nuisances]
"""

import argparse
import json

from modeling_au_mlt.synthetic.tree import make_synthetic_abaw, preview_figure


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument("--train_videos", type=int, required=True, help="label files in Train_Set")
    parser.add_argument("--val_videos", type=int, required=True, help="label files in Validation_Set")
    parser.add_argument(
        "--test_videos",
        type=int,
        default=0,
        help="label files in Test_Set (held-out identities); 0 writes no Test_Set",
    )
    parser.add_argument("--frames_per_video", type=int, required=True, help="annotation lines per video")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--image_size", type=int, default=112, help="side of the saved square frames")
    parser.add_argument("--num_proc", type=int, default=1, help="worker processes (videos in parallel)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--preview", help="also save a figure of each AU alone at full intensity here")
    parser.add_argument(
        "--nuisances",
        action="store_true",
        help="add per-frame nuisances (occlusion, motion blur, lighting flicker, head turn, heavy JPEG) and write "
        "nuisances.json",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    summary = make_synthetic_abaw(
        args.output_dir,
        train_videos=args.train_videos,
        val_videos=args.val_videos,
        test_videos=args.test_videos,
        frames_per_video=args.frames_per_video,
        seed=args.seed,
        image_size=args.image_size,
        num_proc=args.num_proc,
        overwrite=args.overwrite,
        nuisances=args.nuisances,
    )
    if args.preview:
        preview_figure(args.preview, args.seed)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
