"""Synthetic ABAW generator speed: frames written per second (wall clock) and CPU time per frame.

On a shared machine the wall-clock rate depends on other load; CPU time per frame (workers included)
gives the rate two idle cores would reach.

    python benchmarks/bench_synthetic.py [--videos 20] [--frames 100] [--num_proc 2] [--image_size 112]

Goal (issue 3): at least 200 frames/s on 2 cores.
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from modeling_au_mlt.synthetic.tree import make_synthetic_abaw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument("--image_size", type=int, default=112)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        cpu_before, started = _cpu_seconds(), time.perf_counter()
        summary = make_synthetic_abaw(
            Path(root) / "out",
            train_videos=args.videos - args.videos // 5,
            val_videos=args.videos // 5,
            frames_per_video=args.frames,
            seed=0,
            image_size=args.image_size,
            num_proc=args.num_proc,
        )
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    cpu_per_frame = cpu / summary["images"]
    print(
        json.dumps(
            {
                "videos": args.videos,
                "frames_per_video": args.frames,
                "num_proc": args.num_proc,
                "image_size": args.image_size,
                "images": summary["images"],
                "wall_seconds": round(wall, 2),
                "frames_per_second": round(summary["images"] / wall, 1),
                "cpu_ms_per_frame": round(1000 * cpu_per_frame, 3),
                "frames_per_second_on_2_idle_cores": round(2 / cpu_per_frame, 1),
            },
            indent=2,
        )
    )


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the forked workers)."""
    return sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )


if __name__ == "__main__":
    main()
