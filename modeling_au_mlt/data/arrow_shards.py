"""Stream converter rows into Arrow shards laid out exactly as `DatasetDict.save_to_disk` would save them.

A split is given as generator keyword arguments holding one list of picklable work items (videos, CSV
row ranges) and a top-level generator function yielding `ImageRow`s. The list is cut into contiguous
shards; each shard is streamed into its own Arrow file with `datasets.arrow_writer.ArrowWriter`,
`BATCH_ROWS` rows per record batch (so a writer holds a few MB whatever the number of frames), in
parallel over shards with `num_proc` processes. Those files are the final `save_to_disk` shards: the
split folder gets the same `state.json` and `dataset_info.json` that `Dataset.save_to_disk` writes, so
`datasets.load_from_disk` opens it, and no byte of image data is copied twice.

Why not `Dataset.from_generator` and `save_to_disk`: the first spends half its time in per-value Python
encoding, and the copy afterwards reads every shard through a memory map, so the parent's memory grows with
the data; building Arrow columns directly and writing the shards in place removes both (measurements in
docs/benchmarks_converter.md).

Schema (`features_for`): `image` (`Image()`, the source file's bytes unchanged), `labels` (fixed-length
list of float32, one per AU, -1 kept), `video_id` (string), `frame` (int32, 1-based).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, Image, List, Value, config
from datasets.arrow_writer import ArrowWriter
from datasets.fingerprint import generate_random_fingerprint
from datasets.utils.py_utils import asdict  # the variant save_to_disk uses: drops unset fields
from tqdm.auto import tqdm

from ..parallel import parallel_map

BATCH_ROWS = 256  # rows per Arrow record batch: bounds a writer's memory to a few MB of image bytes
MAX_SHARDS_PER_SPLIT = 64  # work units per split: enough for balance and progress, few enough files
# The Dataset attributes that `Dataset.save_to_disk` records in state.json (datasets 3.x to 5.x).
SAVED_STATE_KEYS = ("_fingerprint", "_format_columns", "_format_kwargs", "_format_type", "_output_all_columns")


def features_for(label_names: Sequence[str]) -> Features:
    """The output schema: one fixed-length float32 label list with an entry per AU."""
    return Features(
        {
            "image": Image(),
            "labels": List(Value("float32"), length=len(label_names)),
            "video_id": Value("string"),
            "frame": Value("int32"),
        }
    )


class ImageRow(NamedTuple):
    """One output row as the sources yield it; the image is the file's bytes, unchanged (no re-encode)."""

    image: bytes
    path: str
    labels: Sequence[float]
    video_id: str
    frame: int


def image_row(
    image_path: str | os.PathLike, relative_path: str, labels: Sequence[float], video_id: str, frame: int
) -> ImageRow:
    """Read one frame's image file into an output row."""
    with open(image_path, "rb") as handle:
        return ImageRow(handle.read(), relative_path, labels, video_id, frame)


def rows_table(rows: Sequence[ImageRow], num_labels: int) -> pa.Table:
    """Rows as one Arrow table in the `features_for` layout, built column-wise (no per-value encoding)."""
    image = pa.StructArray.from_arrays(
        [pa.array([row.image for row in rows], pa.binary()), pa.array([row.path for row in rows], pa.string())],
        names=["bytes", "path"],
    )
    flat = np.asarray([row.labels for row in rows], dtype=np.float32).reshape(-1)  # (rows * num_labels,)
    return pa.table(
        {
            "image": image,
            "labels": pa.FixedSizeListArray.from_arrays(pa.array(flat), num_labels),
            "video_id": pa.array([row.video_id for row in rows], pa.string()),
            "frame": pa.array([row.frame for row in rows], pa.int32()),
        }
    )


def shard_kwargs(gen_kwargs: dict, parts: int) -> list[dict]:
    """Split the one list value of `gen_kwargs` into up to `parts` contiguous pieces (order is kept)."""
    key = next(key for key, value in gen_kwargs.items() if isinstance(value, list))
    items = gen_kwargs[key]
    parts = max(1, min(parts, len(items)))
    bounds = [len(items) * part // parts for part in range(parts + 1)]
    return [{**gen_kwargs, key: items[bounds[i] : bounds[i + 1]]} for i in range(parts)]


def write_shard(task: tuple[Callable[..., Iterable[ImageRow]], dict, str, Features]) -> int:
    """Stream one shard's rows into an Arrow file, `BATCH_ROWS` at a time; returns the rows written."""
    generator, gen_kwargs, path, features = task
    writer = ArrowWriter(features=features, path=path)
    try:
        batch = []
        for row in generator(**gen_kwargs):
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                writer.write_table(rows_table(batch, features["labels"].length))
                batch = []
        if batch:
            writer.write_table(rows_table(batch, features["labels"].length))
        rows, _ = writer.finalize()
    finally:
        writer.close()
    return rows


def write_split(
    generator: Callable[..., Iterable[ImageRow]],
    gen_kwargs: dict,
    info: DatasetInfo,
    num_proc: int,
    split_dir: Path,
    split: str,
    expected_rows: int,
) -> int:
    """Write one split straight into `save_to_disk` layout (shards in parallel); returns the rows written.

    The workers' Arrow files are the final shards, so nothing is copied and the parent never reads the
    data (reading memory-mapped shards would make its RSS grow with the data).
    """
    split_dir.mkdir(parents=True)
    shards = shard_kwargs(gen_kwargs, MAX_SHARDS_PER_SPLIT)
    tasks = [
        (generator, shard, str(split_dir / f"part-{i:05d}.arrow"), info.features) for i, shard in enumerate(shards)
    ]
    rows = []
    with tqdm(total=expected_rows, desc=f"writing {split}", unit="row") as progress:
        for count in parallel_map(write_shard, tasks, num_proc):
            rows.append(count)
            progress.update(count)
    # Empty shards are dropped, except one for an empty split (load_from_disk needs at least one file).
    kept = [task[2] for task, count in zip(tasks, rows) if count] or [tasks[0][2]]
    names = [f"data-{i:05d}-of-{len(kept):05d}.arrow" for i in range(len(kept))]
    for task in tasks:
        if task[2] not in kept:
            os.remove(task[2])
    for path, name in zip(kept, names):
        os.replace(path, split_dir / name)
    write_split_metadata(split_dir, names, info, split)
    return sum(rows)


def write_split_metadata(split_dir: Path, names: Sequence[str], info: DatasetInfo, split: str) -> None:
    """`state.json` and `dataset_info.json` as `Dataset.save_to_disk` writes them, for shards already in place.

    The shards are not opened here: opening an Arrow stream pages the whole file in, which would make this
    process's RSS grow with the data. The format fields are those of a fresh dataset with this schema,
    and the fingerprint is random, as `datasets` does for data it cannot hash.
    """
    fresh = Dataset.from_dict({column: [] for column in info.features}, features=info.features)
    state = {key: fresh.__dict__[key] for key in SAVED_STATE_KEYS}
    state["_fingerprint"] = generate_random_fingerprint()
    state["_split"] = split
    state["_data_files"] = [{"filename": name} for name in names]
    (split_dir / config.DATASET_STATE_JSON_FILENAME).write_text(json.dumps(state, indent=2, sort_keys=True))
    saved_info = asdict(info)
    sorted_info = {key: saved_info[key] for key in sorted(saved_info)}
    (split_dir / config.DATASET_INFO_FILENAME).write_text(json.dumps(sorted_info, indent=2))
