"""Section 6: where each AU token looks — last-layer cross-attention against the AU's region.

For frames of the synthetic benchmark's held-out test videos (validation videos when the tree has no test
split), each AU token's last-decoder-layer cross-attention (heads averaged, the ViT CLS token dropped, the rest
renormalised to sum 1 over the patches) is spread evenly over each patch's pixels in the saved frame; its
share inside that AU's region (`regions.json` from `make_synthetic_abaw`, mapped to the frame by
`synthetic.tree.region_masks`) is compared with the region's share of the image, which is what uniform attention
would put there. Each AU is scored on the frames where it is present (its label is 1). A lift above 1 means
the token attends to its region more than chance.

    PYTHONPATH=. python benchmarks/bench_attention.py --model_dir bench_work/paper_model \
        --synthetic_tree bench_work/synthetic_tree --figure docs/attention_regions.png
"""

import argparse
import json
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
from PIL import Image

from benchmarks.common import markdown_table, report
from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.atomic_io import save_figure
from modeling_au_mlt.data.abaw import SplitCounts, VideoJob, video_rows
from modeling_au_mlt.hub.folder import image_processor_for
from modeling_au_mlt.synthetic.tree import SPLITS, TEST_SPLIT, region_masks

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def scored_split(regions: dict) -> str:
    """The tree's test split when it has one, else its validation split."""
    splits = {entry["split"] for entry in regions["videos"].values()}
    return TEST_SPLIT if TEST_SPLIT in splits else SPLITS[1]


def labelled_frames(tree: Path, regions: dict, split: str, label_names: list[str], max_frames: int) -> list[tuple]:
    """Up to `max_frames` (video, frame, labels (L,)) evenly spaced over `split`'s frames with an image and labels.

    The label files are read as the converter reads them (`abaw.video_rows`), in `label_names` order.
    """
    frames = []
    for video in sorted(name for name, entry in regions["videos"].items() if entry["split"] == split):
        job = VideoJob(
            split,
            video,
            str(tree / "AU_Detection_Challenge" / split / f"{video}.txt"),
            str(tree / "cropped_aligned" / video),
        )
        rows = video_rows(job, label_names, 1, "skip", SplitCounts(len(label_names)))
        frames += [(video, frame, np.array(labels)) for frame, labels, _ in rows]
    if not frames:
        raise ValueError(f"{tree}: no labelled frame with an image in split {split!r}")
    step = max(1, len(frames) // max_frames)
    return frames[::step][:max_frames]


def patch_attention(model: AUMLTModel, pixel_values: torch.Tensor) -> np.ndarray:
    """(batch, labels, grid, grid) last-layer cross-attention over the patches, heads averaged, maps summing to 1."""
    with torch.inference_mode():
        weights = model(pixel_values, output_attentions=True).cross_attentions[-1]  # (batch, heads, labels, tokens)
    patches = weights.mean(dim=1)[..., 1:]  # (batch, labels, patches): CLS dropped
    patches = patches / patches.sum(dim=-1, keepdim=True)
    grid = int(round(patches.shape[-1] ** 0.5))
    return patches.reshape(*patches.shape[:2], grid, grid).numpy()


def pixel_share(attention: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(labels,) share of each label's patch attention (labels, g, g) inside its pixel mask (labels, H, W)."""
    height, width = masks.shape[1:]
    shares = []
    for grid_map, mask in zip(attention, masks):
        # Nearest-neighbour upsampling spreads each patch's mass evenly over the pixels it covers.
        pixels = cv2.resize(grid_map.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST)
        shares.append(float((pixels * mask).sum() / pixels.sum()))
    return np.array(shares)


def attention_shares(model_dir: Path, tree: Path, max_frames: int, batch_size: int) -> dict:
    """Per AU, over the frames where it is present: mean attention share inside its region, the region's mean
    image share, their ratio (lift) and the frame count; and the median lift over the AUs."""
    # Attention weights come back from eager attention only.
    model = AUMLTModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    processor = image_processor_for(model.config)
    regions = json.loads((tree / "regions.json").read_text())
    names = model.config.label_names
    missing = sorted(set(names) - set(regions["aus"]))
    if missing:
        raise ValueError(f"{tree / 'regions.json'}: no regions for the model's labels {missing}")
    rows = [regions["aus"].index(name) for name in names]
    split = scored_split(regions)
    frames = labelled_frames(tree, regions, split, names, max_frames)
    inside, uniform = [], []
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        images = [
            Image.open(tree / "cropped_aligned" / video / f"{frame:05d}.jpg").convert("RGB")
            for video, frame, _ in batch
        ]
        attention = patch_attention(model, processor(images=images, return_tensors="pt")["pixel_values"])
        for grid_maps, (video, frame, _) in zip(attention, batch):
            masks = region_masks(regions, video, frame)[rows]  # (labels, H, W), model label order
            inside.append(pixel_share(grid_maps, masks))
            uniform.append(masks.mean(axis=(1, 2)))
    present = np.stack([labels for _, _, labels in frames]) == 1  # (frames, labels)
    inside, uniform = np.stack(inside), np.stack(uniform)  # (frames, labels)
    per_au = {}
    for index, name in enumerate(names):
        rows_present = present[:, index]
        if rows_present.any():
            a, u = inside[rows_present, index].mean(), uniform[rows_present, index].mean()
            per_au[name] = {
                "frames_present": int(rows_present.sum()),
                "attention_inside": float(a),
                "region_share": float(u),
                "lift": float(a / u),
            }
    lifts = [stats["lift"] for stats in per_au.values()]
    return {
        "split": split,
        "frames": len(frames),
        "per_au": per_au,
        "median_lift": float(np.median(lifts)) if lifts else None,
    }


def regions_figure(per_au: dict):
    """Grouped bars per AU: attention share inside the region vs the region's share of the image."""
    names = list(per_au)
    positions = np.arange(len(names))
    figure, axes = plt.subplots(figsize=(9, 3.6))
    axes.bar(
        positions - 0.2,
        [per_au[n]["attention_inside"] for n in names],
        0.4,
        label="AU token's attention inside its region",
    )
    axes.bar(
        positions + 0.2,
        [per_au[n]["region_share"] for n in names],
        0.4,
        label="region's share of the image (uniform attention)",
    )
    axes.set_xticks(positions, names)
    axes.set_ylabel("share")
    axes.set_title("Last-layer cross-attention vs AU regions (synthetic held-out frames where the AU is present)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="a trained AU-MLT folder (bench_quality.py writes one)")
    parser.add_argument("--synthetic_tree", required=True, help="make_synthetic_abaw output with regions.json")
    parser.add_argument("--max_frames", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--figure", default="docs/attention_regions.png")
    parser.add_argument("--output", help="write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = attention_shares(Path(args.model_dir), Path(args.synthetic_tree), args.max_frames, args.batch_size)
    figure = regions_figure(result["per_au"])
    save_figure(figure, args.figure, dpi=110)
    plt.close(figure)
    rows = [
        [name, stats["frames_present"], stats["attention_inside"], stats["region_share"], stats["lift"]]
        for name, stats in result["per_au"].items()
    ]
    table = markdown_table(["AU", "frames present", "attention inside region", "region share of image", "lift"], rows)
    summary = f"\n\n{result['frames']} {result['split']} frames; median lift over AUs {result['median_lift']}"
    report({"section": "attention", "model_dir": args.model_dir, **result}, args.output, table + summary)


if __name__ == "__main__":
    main()
