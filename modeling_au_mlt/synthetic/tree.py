"""A synthetic AU benchmark written exactly in the Aff-Wild2 / ABAW release layout.

`make_synthetic_abaw(OUT, ...)` writes

- `OUT/cropped_aligned/<video>/<frame:05d>.jpg`: procedural faces (`faces.py`), one identity per
  video, whose AUs follow `labels.py`;
- `OUT/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt` (and `Test_Set/` when
  `test_videos` > 0, a held-out split labelled like the others): the header
  `AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26`, then line k = frame k (`1`, `0`, `-1`);
- `OUT/regions.json`: where each AU acts, for scoring attention maps (schema below);
- `OUT/synthetic_summary.json`: the returned summary;
- with `nuisances=True` only, `OUT/nuisances.json`: which frames carry which per-frame nuisance (occlusion,
  motion blur, lighting flicker, head turn, heavy JPEG; types, rates and strengths in `nuisances.py`), and
  per split a `nuisance_frames` count in the summary. The labels stay the true AU state on those frames.

The release's quirks are reproduced (each drawn per video from its own random stream): runs of all `-1`
rows (30 % of videos; their images exist), a few rows with one `-1` entry (0.2 % of rows), annotated
frames without an image (30 % of videos, 1-2 runs of 1-3 frames), images past the last annotation line
(15 % of videos), two-person videos split into `<name>_left` / `<name>_right` (about 10 % of videos, both
in the same split), CRLF line endings (15 %) and a trailing blank line (15 %).

`regions.json` schema::

    {"format": "au-regions/1", "image_size": 112, "aus": ["AU1", ..., "AU26"],
     "videos": {"<video>": {
         "split": "Train_Set" | "Validation_Set" | "Test_Set",
         "regions": {"AU1": [[[x, y], [x, y], [x, y], [x, y]], ...], ...},   # boxes, canonical pixels
         "affines": {"<frame>": [[a, b, c], [d, e, f]], ...}}}}              # one per frame with an image

For AU `k` of frame `t`, the region in the saved frame's pixels (x right, y down, pixel centres at
integers) is the union of the polygons `[[a, b], [d, e]] @ p + [c, f]` for every canonical vertex `p`
(`frame_regions` and `region_masks` do this). Outside it, switching that AU on (alone, from the neutral
face) changes no pixel; on nuisance frames the affine stays exact (a head turn is part of the pose) but blur
and occluders break that promise.

`nuisances.json` schema (frames numbered from 1 as the image files, only frames with an image and at least
one nuisance; every video is listed)::

    {"format": "au-nuisances/1", "rates": {"occlusion": 0.04, ...}, "types": ["occlusion", ...],
     "videos": {"<video>": {"<frame>": ["motion_blur", "heavy_jpeg"], ...}}}

Output is deterministic for a seed: the video plan draws from `numpy.random.default_rng([seed, 0])` and
video i from `default_rng([seed, 1 + i])`, independent of worker order, and JPEG encoding is
deterministic. Each video draws its own identity (face geometry, colours) first from its own stream, so
no identity is shared between videos, and none between splits. With `test_videos=0` the tree is byte for
byte the one written before the test split existed. The tree is built in a temporary folder beside OUT and
renamed into place at the end. Nuisance events draw from `default_rng([seed, 1 + i, 1])`, apart from the
video's stream, so `nuisances=False` writes the tree byte for byte as before nuisances existed, and with them
the frames without a nuisance are the same bytes too.
"""

import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..atomic_io import replace_dir, save_figure, write_json
from ..configuration_au_mlt import ABAW_AUS, NOT_ANNOTATED
from ..parallel import parallel_map
from .faces import FaceRenderer
from .geometry import (
    CANONICAL_SIZE,
    HairStyle,
    au_regions,
    polygon_mask,
    pose_matrix,
    sample_identity,
    transform_polygons,
)
from .labels import sample_video
from .nuisances import (
    NuisanceRates,
    active_events,
    nuisance_conditions,
    nuisance_counts,
    nuisance_document,
    nuisance_image,
    sample_events,
)

SPLITS = ("Train_Set", "Validation_Set")
TEST_SPLIT = "Test_Set"  # the name ABAW participants give the test labels once released
QUIRKS = {
    "unannotated_run": 0.3,
    "partial_row": 0.002,
    "missing_images": 0.3,
    "extra_images": 0.15,
    "pair": 0.1,
    "crlf": 0.15,
    "trailing_blank": 0.15,
}
_RESOLUTIONS = ("640x360", "1280x720", "1920x1080", "480x360", "640x480")


def make_synthetic_abaw(
    output_dir,
    *,
    train_videos: int,
    val_videos: int,
    frames_per_video: int,
    seed: int,
    test_videos: int = 0,
    image_size: int = CANONICAL_SIZE,
    num_proc: int = 1,
    overwrite: bool = False,
    nuisances: bool = False,
    nuisance_rates: NuisanceRates | None = None,
) -> dict:
    """Write the synthetic tree to `output_dir` and return its summary (counts per split, frames/s).

    `test_videos` > 0 adds a `Test_Set` of that many videos (new identities, like every video). `nuisances`
    adds per-frame nuisances at `nuisance_rates` (default: `NuisanceRates()`) and writes nuisances.json.
    Raises `FileExistsError` if `output_dir` exists and is not empty, unless `overwrite`.
    """
    if min(train_videos, val_videos, test_videos) < 0 or frames_per_video < 1 or image_size < 32 or num_proc < 1:
        raise ValueError(
            "expected train_videos, val_videos, test_videos >= 0, frames_per_video >= 1, image_size >= 32, "
            f"num_proc >= 1; got {train_videos}, {val_videos}, {test_videos}, {frames_per_video}, {image_size}, "
            f"{num_proc}"
        )
    split_names = [*SPLITS, TEST_SPLIT] if test_videos else list(SPLITS)
    output = Path(output_dir).resolve()
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output}: exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        for split in split_names:  # train and validation folders exist even without a video, as in the release
            (temp / "AU_Detection_Challenge" / split).mkdir(parents=True)
        (temp / "cropped_aligned").mkdir()
        rates = (nuisance_rates or NuisanceRates()) if nuisances else None
        tasks = [
            (seed, index, split, name, frames_per_video, image_size, str(temp), rates)
            for index, (split, name) in enumerate(video_plan(seed, train_videos, val_videos, test_videos))
        ]
        videos = parallel_map(_write_video, tasks, num_proc)
        results = list(tqdm(videos, total=len(tasks), desc="synthetic videos", unit="video", disable=None))
        summary = _summary(results, split_names, output, seed, image_size, time.perf_counter() - started)
        write_json(temp / "regions.json", _regions_document(results, image_size), compact=True)
        if rates is not None:
            _write_nuisances(temp, results, rates, summary["splits"])
        write_json(temp / "synthetic_summary.json", summary, compact=True)
        replace_dir(temp, output)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return summary


def video_plan(seed: int, train_videos: int, val_videos: int, test_videos: int = 0) -> list[tuple[str, str]]:
    """(split, video name) for every video, test videos last; names are unique, some come as `_left` /
    `_right` pairs (both in one split)."""
    rng = np.random.default_rng([seed, 0])
    ids = rng.permutation(10 * (train_videos + val_videos + test_videos) + 10) + 1
    plan, used = [], 0
    for split, count in zip(SPLITS + (TEST_SPLIT,), (train_videos, val_videos, test_videos)):
        made = 0
        while made < count:
            number, used = int(ids[used]), used + 1
            resolution = _RESOLUTIONS[rng.integers(len(_RESOLUTIONS))]
            base = (f"{number}-30-{resolution}", f"video{number}", str(number))[rng.integers(3)]
            if count - made >= 2 and rng.random() < QUIRKS["pair"]:
                plan += [(split, f"{base}_left"), (split, f"{base}_right")]
                made += 2
            else:
                plan.append((split, base))
                made += 1
    return plan


def frame_regions(regions: dict, video: str, frame: int) -> dict[str, list[np.ndarray]]:
    """For each AU, its (4, 2) polygons in the saved frame's pixels (`regions` = loaded regions.json)."""
    entry = regions["videos"][video]
    matrix = np.asarray(entry["affines"][str(frame)], dtype=np.float64)
    return {
        name: transform_polygons([np.asarray(polygon, np.float64) for polygon in polygons], matrix)
        for name, polygons in entry["regions"].items()
    }


def region_masks(regions: dict, video: str, frame: int) -> np.ndarray:
    """(num_aus, H, W) bool: pixel (y, x) lies in the AU's region, AUs in `regions["aus"]` order."""
    polygons = frame_regions(regions, video, frame)
    return np.stack([polygon_mask(polygons[name], regions["image_size"]) for name in regions["aus"]])


def preview_figure(path, seed: int, identities: int = 3, image_size: int = CANONICAL_SIZE) -> None:
    """Save a grid: per identity, a neutral face and each AU alone at full intensity, and below each the
    absolute difference from neutral with the AU's region outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["neutral", *ABAW_AUS]
    figure, axes = plt.subplots(2 * identities, len(columns), figsize=(1.25 * len(columns), 2.6 * identities))
    for row in range(identities):
        renderer = FaceRenderer(_identity_with_hair_style(seed, HairStyle(row % len(HairStyle))), image_size)
        neutral, regions = renderer.canonical(np.zeros(len(ABAW_AUS))), au_regions(renderer.identity, image_size)
        for column, name in enumerate(columns):
            intensities = np.eye(len(ABAW_AUS))[column - 1] if column else np.zeros(len(ABAW_AUS))
            face = renderer.canonical(intensities)
            axes[2 * row, column].imshow(face)
            axes[2 * row + 1, column].imshow(
                np.abs(face.astype(int) - neutral).max(-1), cmap="magma", vmin=0, vmax=120
            )
            for polygon in regions.get(name, []):
                axes[2 * row + 1, column].add_patch(plt.Polygon(polygon, fill=False, color="cyan", lw=0.8))
            if row == 0:
                axes[0, column].set_title(name, fontsize=10)
    for axis in axes.flat:
        axis.set_axis_off()
    figure.suptitle("Synthetic AU faces: each AU alone at full intensity (rows below: |difference| and region)")
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)


def _identity_with_hair_style(seed: int, style: HairStyle):
    """The first identity of the preview's random stream that wears `style` (so the rows differ)."""
    rng = np.random.default_rng([seed, 1000 + style])
    while (identity := sample_identity(rng)).hair_style != style:
        pass
    return identity


def _write_video(task: tuple) -> dict:
    """Render one video's frames into the temporary tree; return its label text, regions and counts."""
    seed, index, split, name, num_frames, image_size, root, rates = task
    rng = np.random.default_rng([seed, 1 + index])
    renderer = FaceRenderer(sample_identity(rng), image_size)
    extra = int(rng.integers(1, 4)) if rng.random() < QUIRKS["extra_images"] else 0
    labels, intensities = sample_video(rng, num_frames + extra)
    conditions = renderer.sample_conditions(rng, num_frames + extra)
    rows, has_image = _quirky_rows(rng, labels[:num_frames])
    nuisance_rng = np.random.default_rng([seed, 1 + index, 1])  # not `rng`: nuisances=False keeps the bytes
    events = [] if rates is None else sample_events(nuisance_rng, len(conditions), renderer.identity, rates)
    has_image = np.concatenate([has_image, np.ones(extra, bool)])
    folder = Path(root) / "cropped_aligned" / name
    folder.mkdir(parents=True)
    affines, nuisance_frames = {}, {}
    for frame in np.flatnonzero(has_image):
        active = active_events(events, frame)
        frame_conditions = nuisance_conditions(active, frame, conditions[frame], renderer.identity, image_size)
        image = nuisance_image(active, frame, renderer.render(intensities[frame], frame_conditions, rng))
        ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, frame_conditions.quality])
        (folder / f"{frame + 1:05d}.jpg").write_bytes(jpeg.tobytes())
        affines[str(frame + 1)] = np.round(pose_matrix(renderer.identity, frame_conditions, image_size), 4).tolist()
        if active:
            nuisance_frames[str(frame + 1)] = [event.kind for event in active]
    newline = "\r\n" if rng.random() < QUIRKS["crlf"] else "\n"
    text = newline.join([",".join(ABAW_AUS), *(",".join(map(str, row)) for row in rows.tolist())]) + newline
    if rng.random() < QUIRKS["trailing_blank"]:
        text += newline
    label_file = Path(root) / "AU_Detection_Challenge" / split / f"{name}.txt"
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_bytes(text.encode())
    regions = au_regions(renderer.identity, image_size)
    return {
        "split": split,
        "name": name,
        "rows": rows,
        "has_image": has_image[:num_frames],
        "extra": extra,
        "regions": {name: [np.round(polygon, 2).tolist() for polygon in boxes] for name, boxes in regions.items()},
        "affines": affines,
        "nuisances": nuisance_frames,
    }


def _write_nuisances(root: Path, results: list[dict], rates: NuisanceRates, splits: dict) -> None:
    """Write nuisances.json and add each split's `nuisance_frames` counts to the summary's `splits`."""
    for split, counts in splits.items():
        counts["nuisance_frames"] = nuisance_counts(
            [result["nuisances"] for result in results if result["split"] == split]
        )
    videos = {result["name"]: result["nuisances"] for result in results}
    write_json(root / "nuisances.json", nuisance_document(rates, videos), compact=True)


def _quirky_rows(rng: np.random.Generator, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label rows with the release's `-1` quirks, and which annotated frames have an image."""
    rows, num_frames = labels.astype(np.int64), len(labels)
    if rng.random() < QUIRKS["unannotated_run"]:
        length = max(1, round(rng.uniform(0.01, 0.05) * num_frames))
        start = int(rng.integers(0, max(1, num_frames - length + 1)))
        rows[start : start + length] = NOT_ANNOTATED
    annotated = rows[:, 0] != NOT_ANNOTATED
    partial = annotated & (rng.random(num_frames) < QUIRKS["partial_row"])
    rows[np.flatnonzero(partial), rng.integers(0, len(ABAW_AUS), int(partial.sum()))] = NOT_ANNOTATED
    has_image = np.ones(num_frames, bool)
    if rng.random() < QUIRKS["missing_images"]:
        for _ in range(int(rng.integers(1, 3))):
            start = int(rng.integers(0, num_frames))
            has_image[start : start + int(rng.integers(1, 4))] = False
    return rows, has_image | ~annotated  # all -1 rows keep their image: every dropped row has one reason


def _summary(
    results: list[dict], split_names: list[str], output: Path, seed: int, image_size: int, seconds: float
) -> dict:
    """Per-split counts, named as the converter reports them, and the generation speed."""
    splits = {}
    for split in split_names:
        in_split = [result for result in results if result["split"] == split]
        rows = (
            np.concatenate([result["rows"] for result in in_split])
            if in_split
            else np.zeros((0, len(ABAW_AUS)), np.int64)
        )
        has_image = np.concatenate([result["has_image"] for result in in_split]) if in_split else np.zeros(0, bool)
        unannotated = (rows == NOT_ANNOTATED).all(axis=1)
        kept = rows[~unannotated & has_image]
        annotated = (kept != NOT_ANNOTATED).sum(axis=0)
        splits[split] = {
            "videos": len(in_split),
            "label_lines": len(rows),
            "frames": len(kept),
            "dropped_unannotated": int(unannotated.sum()),
            "dropped_missing_image": int((~has_image).sum()),
            "unlabelled_images": int(sum(result["extra"] for result in in_split)),
            "partially_unannotated_rows": int(((rows == NOT_ANNOTATED).any(axis=1) & ~unannotated).sum()),
            "positive_rate": {
                name: float((kept[:, column] == 1).sum() / max(annotated[column], 1))
                for column, name in enumerate(ABAW_AUS)
            },
        }
    images = sum(len(result["affines"]) for result in results)
    return {
        "output_dir": str(output),
        "seed": seed,
        "image_size": image_size,
        "splits": splits,
        "images": images,
        "seconds": round(seconds, 3),
        "frames_per_second": round(images / max(seconds, 1e-9), 1),
    }


def _regions_document(results: list[dict], image_size: int) -> dict:
    return {
        "format": "au-regions/1",
        "image_size": image_size,
        "aus": list(ABAW_AUS),
        "videos": {
            result["name"]: {"split": result["split"], "regions": result["regions"], "affines": result["affines"]}
            for result in results
        },
    }
