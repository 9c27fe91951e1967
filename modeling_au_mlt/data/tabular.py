"""Convert a CSV of frames (an image path column and one column per AU) to the ABAW-style DatasetDict.

For BP4D, DISFA or a lab's own data, binarised beforehand. One header row, then one row per frame:
- the image column (default `image`): a path, relative to `image_root` (default: the CSV's folder) or absolute;
- label columns: by default every column named `AU<digits>` (e.g. AU1, AU06), else `label_columns`;
  values 1, 0, -1, or empty (= -1, not annotated);
- optional `split_column` (values become split names, e.g. train/validation/test; without it all rows
  go to `train`), `video_column` (default: the image's folder) and `frame_column` (default: the last
  number in the image file name, else the row's 1-based position among the data rows).
Rows follow the ABAW rules of `conversion.SplitCounts`: all -1 rows, rows whose image is missing or
empty, and rows left out by `subsample` (every K-th frame number of each video) are dropped and
counted; a malformed row (wrong number of cells, a bad label or frame value, a video in two splits)
raises `DataFormatError` naming the CSV and line, or is skipped and counted with `on_error="skip"`.
Blank lines are not rows. Images are not scanned, so `unlabelled_images` is always 0 here.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .arrow_shards import ImageRow, image_row
from .conversion import (
    DataFormatError,
    SplitCounts,
    check_options,
    finish,
    make_report,
    parse_label_cells,
    write_dataset_dict,
)

DEFAULT_SPLIT = "train"
AU_COLUMN = re.compile(r"^AU\d+$", re.IGNORECASE)
SPLIT_NAME = re.compile(r"^\w+$")
LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class CsvLayout:
    """Where each field sits in the CSV's rows (column indices) and where relative image paths start."""

    path: str
    image_root: str
    num_columns: int
    image_column: int
    label_columns: tuple[int, ...]
    label_names: tuple[str, ...]
    split_column: int | None
    video_column: int | None
    frame_column: int | None


@dataclass(frozen=True)
class CsvRow:
    """One parsed data row."""

    split: str
    video: str
    frame: int
    labels: list[float]
    image: str


def column_index(path: str, header: Sequence[str], name: str | None, role: str) -> int | None:
    """Index of the column `name` (None stays None); a missing column is an error on line 1."""
    if name is None:
        return None
    if name not in header:
        raise DataFormatError(path, 1, f"no {role} column {name!r}; the header has {', '.join(header)}")
    return header.index(name)


def read_layout(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike | None,
    image_column: str,
    label_columns: Sequence[str] | None,
    split_column: str | None,
    video_column: str | None,
    frame_column: str | None,
) -> CsvLayout:
    """Check the header against the requested columns and fix every column's position."""
    path = str(csv_path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = [name.strip() for name in next(csv.reader(handle), [])]
    if not header:
        raise DataFormatError(path, 1, "empty file; expected a header row")
    names = list(label_columns) if label_columns else [name for name in header if AU_COLUMN.match(name)]
    if not names:
        raise DataFormatError(path, 1, f"no AU<number> label columns and none given; header: {', '.join(header)}")
    return CsvLayout(
        path=path,
        image_root=str(image_root if image_root is not None else Path(path).parent),
        num_columns=len(header),
        image_column=column_index(path, header, image_column, "image"),
        label_columns=tuple(column_index(path, header, name, "label") for name in names),
        label_names=tuple(names),
        split_column=column_index(path, header, split_column, "split"),
        video_column=column_index(path, header, video_column, "video"),
        frame_column=column_index(path, header, frame_column, "frame"),
    )


def data_rows(layout: CsvLayout) -> Iterator[tuple[int, int, list[str]]]:
    """`(data row index, line number, cells)` of every non-blank row after the header."""
    with open(layout.path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        index = 0
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield index, reader.line_num, cells
                index += 1


def frame_number(layout: CsvLayout, cells: Sequence[str], image: str, index: int, line: int) -> int:
    """The frame column's integer, else the last number in the file name, else the row's position."""
    if layout.frame_column is None:
        found = LAST_NUMBER.search(os.path.basename(image))
        return int(found.group(1)) if found else index + 1
    text = cells[layout.frame_column].strip()
    if not text.lstrip("-").isdigit():
        raise DataFormatError(layout.path, line, f"frame {text!r} is not an integer")
    return int(text)


def parse_row(layout: CsvLayout, cells: Sequence[str], index: int, line: int) -> CsvRow:
    """One data row's fields, checked; raises `DataFormatError` naming the CSV line."""
    if len(cells) != layout.num_columns:
        problem = f"expected {layout.num_columns} cells as in the header, found {len(cells)}"
        raise DataFormatError(layout.path, line, problem)
    image = cells[layout.image_column].strip()
    if not image:
        raise DataFormatError(layout.path, line, "empty image path")
    split = cells[layout.split_column].strip() if layout.split_column is not None else DEFAULT_SPLIT
    if not SPLIT_NAME.match(split):
        raise DataFormatError(layout.path, line, f"split {split!r} is not a name of letters, digits and _")
    folder = os.path.dirname(image.replace("\\", "/"))
    video = cells[layout.video_column].strip() if layout.video_column is not None else folder or Path(layout.path).stem
    labels = parse_label_cells(
        [cells[column] for column in layout.label_columns],
        layout.label_names,
        layout.path,
        line,
        empty_is_unannotated=True,
    )
    return CsvRow(split, video, frame_number(layout, cells, image, index, line), labels, image)


def has_image(layout: CsvLayout, image: str) -> bool:
    """Whether the row's image file exists and is not empty."""
    try:
        return os.stat(os.path.join(layout.image_root, image)).st_size > 0
    except FileNotFoundError:
        return False


def split_of(layout: CsvLayout, cells: Sequence[str]) -> str | None:
    """The split a row names, or None when the row is too broken to tell."""
    if layout.split_column is None:
        return DEFAULT_SPLIT
    split = cells[layout.split_column].strip() if layout.split_column < len(cells) else ""
    return split if SPLIT_NAME.match(split) else None


def plan(layout: CsvLayout, subsample: int, on_error: str) -> tuple[dict[str, SplitCounts], dict[str, str], int, int]:
    """Validate and count every row (no image is read).

    Returns counts per split, video -> split, the number of data rows, and the malformed rows whose split
    could not be read (counted apart, as they belong to no split).
    """
    counts: dict[str, SplitCounts] = {}
    video_split: dict[str, str] = {}
    videos_kept: set[tuple[str, str]] = set()
    total = unplaced = 0
    for index, line, cells in tqdm(data_rows(layout), desc=f"checking {layout.path}", unit="row"):
        total = index + 1
        split = split_of(layout, cells)
        split_counts = counts.setdefault(split, SplitCounts(len(layout.label_names))) if split else None
        try:
            row = parse_row(layout, cells, index, line)
            if video_split.setdefault(row.video, row.split) != row.split:
                raise DataFormatError(
                    layout.path,
                    line,
                    f"video {row.video!r} is in split {row.split!r} here but in {video_split[row.video]!r} before",
                )
        except DataFormatError as error:
            if split_counts is not None:
                split_counts.malformed(error, on_error)
            elif on_error == "raise":
                raise
            else:
                unplaced += 1
            continue
        if split_counts.keeps(row.labels, has_image(layout, row.image), row.frame, subsample):
            videos_kept.add((row.split, row.video))
    for split, _ in videos_kept:
        counts[split].videos += 1
    return counts, video_split, total, unplaced


def generate_examples(
    row_ranges: list[tuple[int, int]],
    layout: CsvLayout,
    split: str,
    video_split: tuple[tuple[str, str], ...],
    subsample: int,
) -> Iterator[ImageRow]:
    """Shard body for `arrow_shards.write_split`: kept rows of `split` whose data-row index lies in `row_ranges`."""
    owner = dict(video_split)
    counts = SplitCounts(len(layout.label_names))
    for start, stop in row_ranges:
        for index, line, cells in data_rows(layout):
            if index >= stop:
                break
            if index < start:
                continue
            try:
                row = parse_row(layout, cells, index, line)
            except DataFormatError:
                continue
            if (
                row.split == split
                and owner[row.video] == split
                and counts.keeps(row.labels, has_image(layout, row.image), row.frame, subsample)
            ):
                yield image_row(
                    os.path.join(layout.image_root, row.image), row.image, row.labels, row.video, row.frame
                )


def row_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous, nearly equal `[start, stop)` ranges of data-row indices (order is kept)."""
    bounds = [total * part // parts for part in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def prepare_csv(
    csv_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    split_column: str | None = None,
    image_column: str = "image",
    label_columns: Sequence[str] | None = None,
    video_column: str | None = None,
    frame_column: str | None = None,
    num_proc: int = 1,
    subsample: int = 1,
    on_error: str = "raise",
    push_to_hub: str | None = None,
) -> dict:
    """Convert a frame CSV to a DatasetDict at `output_dir`; returns the report (also in `prepare_report.json`)."""
    check_options(num_proc, subsample, on_error)
    layout = read_layout(csv_path, image_root, image_column, label_columns, split_column, video_column, frame_column)
    counts, video_split, total, unplaced = plan(layout, subsample, on_error)
    if not counts:
        raise DataFormatError(csv_path, None, "no data rows after the header")
    report = make_report(
        layout.label_names,
        counts,
        source="csv",
        csv_path=str(csv_path),
        image_root=layout.image_root,
        subsample=subsample,
        on_error=on_error,
        malformed_lines_without_split=unplaced,
    )
    ranges = row_ranges(total, num_proc)
    split_kwargs = {
        split: {
            "row_ranges": ranges,
            "layout": layout,
            "split": split,
            "video_split": tuple(video_split.items()),
            "subsample": subsample,
        }
        for split in counts
    }
    output = write_dataset_dict(output_dir, split_kwargs, generate_examples, layout.label_names, report, num_proc)
    return finish(output, report, push_to_hub)
