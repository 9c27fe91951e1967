"""Read the ABAW AU-detection release (Aff-Wild2) and convert it to a `datasets.DatasetDict`.

Layout (as ABAW participants read the release): images `<images_dir>/<video>/<frame:05d>.jpg` (1-based frames;
two-person videos are separate `<name>_left` / `<name>_right` folders), labels
`<annotations_dir>/{Train_Set,Validation_Set}/<video>.txt` (the parent may also be named
`AU_Detection_Challenge` or ABAW2's `AU_Set`), and, once test labels are released, `Test_Set/<video>.txt`
beside them (split `test`). A label file's first line is the header naming the AUs;
line k after it holds frame k's values, 1 present, 0 absent, -1 not annotated.

Rules: the first label file's header fixes the label order and every other header must name the same
AUs (in any order; columns are reordered). CRLF endings, a BOM and trailing blank lines are accepted.
All -1 rows, annotated frames without an image (or with an empty file), and frames left out by
`subsample` are dropped; images without an annotation line are ignored; each is counted. Malformed
lines, mismatched headers and a video in two splits raise `DataFormatError` (file and line in the
message) before anything is written, or are skipped and counted with `on_error="skip"`.
A test list (one video name per line) adds a `test` split of all its images with every label -1; it
cannot be combined with a labelled `Test_Set/` folder (both would be the `test` split).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..configuration_au_mlt import NOT_ANNOTATED
from ..parallel import parallel_map
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

SPLIT_FOLDERS = {"train": "train_set", "validation": "validation_set", "test": "test_set"}
ANNOTATION_PARENTS = ("AU_Detection_Challenge", "AU_Set")
IMAGE_SUFFIX = ".jpg"
COUNT_CHUNK = 4  # videos per counting task: small enough to balance workers and show progress


@dataclass(frozen=True)
class VideoJob:
    """One video to convert: its split, name, label file (None for test videos) and image folder."""

    split: str
    video: str
    label_path: str | None
    image_dir: str


def find_split_dirs(annotations_dir: str | os.PathLike) -> dict[str, Path]:
    """`{"train": .../Train_Set, "validation": .../Validation_Set, "test": .../Test_Set}` (whichever exist),
    found case-insensitively."""
    root = Path(annotations_dir)
    for base in [root] + [root / parent for parent in ANNOTATION_PARENTS]:
        children = {child.name.lower(): child for child in base.iterdir() if child.is_dir()} if base.is_dir() else {}
        found = {split: children[folder] for split, folder in SPLIT_FOLDERS.items() if folder in children}
        if found:
            return found
    raise FileNotFoundError(
        f"{root}: no Train_Set/, Validation_Set/ or Test_Set/ folder, directly or under "
        f"{' or '.join(ANNOTATION_PARENTS)}/"
    )


def read_lines(path: str | os.PathLike) -> list[str]:
    """A text file's lines without line endings (LF, CRLF or CR), BOM and trailing blank lines removed."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DataFormatError(path, None, f"not UTF-8 text ({error})") from error
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def header_names(path: str | os.PathLike, lines: Sequence[str]) -> list[str]:
    """The AU names of a label file's header line; rejects a missing or duplicated header."""
    if not lines:
        raise DataFormatError(path, 1, "empty file; expected a header line such as AU1,AU2,...")
    names = [cell.strip() for cell in lines[0].split(",")]
    if any(not name or name.lstrip("-").isdigit() for name in names):
        raise DataFormatError(path, 1, f"expected a header of AU names such as AU1,AU2,..., found {lines[0]!r}")
    if len(set(names)) != len(names):
        raise DataFormatError(path, 1, f"header names an AU twice: {lines[0]!r}")
    return names


def column_order(path: str | os.PathLike, names: Sequence[str], label_names: Sequence[str]) -> list[int]:
    """For each output label, the column that holds it in this file; the header must name the same AUs."""
    if sorted(names) != sorted(label_names):
        raise DataFormatError(
            path, 1, f"header {','.join(names)} does not match {','.join(label_names)} (the first label file's header)"
        )
    return [names.index(name) for name in label_names]


def frame_images(image_dir: str | os.PathLike) -> dict[int, tuple[str, int]]:
    """Frame number -> (file name, size) for every `<digits>.jpg` in a video's image folder (empty if no folder)."""
    try:
        entries = list(os.scandir(image_dir))
    except FileNotFoundError:
        return {}
    images = {}
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() == IMAGE_SUFFIX and stem.isdigit() and entry.is_file():
            images[int(stem)] = (entry.name, entry.stat().st_size)
    return images


def video_rows(
    job: VideoJob, label_names: Sequence[str], subsample: int, on_error: str, counts: SplitCounts
) -> Iterator[tuple[int, list[float], str]]:
    """`(frame, labels, image file name)` of every kept frame of one video, counting every frame not kept."""
    images = frame_images(job.image_dir)
    kept = 0
    if job.label_path is None:
        unlabelled = [float(NOT_ANNOTATED)] * len(label_names)
        for frame in sorted(images):
            if counts.keeps_image(images[frame][1] > 0, frame, subsample):
                kept += 1
                yield frame, unlabelled, images[frame][0]
    else:
        try:
            lines = read_lines(job.label_path)
            names = header_names(job.label_path, lines)
            order = column_order(job.label_path, names, label_names)
        except DataFormatError as error:
            counts.skipped_video(error, on_error)
            return
        for frame, line in enumerate(lines[1:], start=1):
            try:
                cells = parse_label_cells(line.split(","), names, job.label_path, frame + 1)
            except DataFormatError as error:
                counts.malformed(error, on_error)
                continue
            labels = [cells[column] for column in order]
            name, size = images.get(frame, ("", 0))
            if counts.keeps(labels, size > 0, frame, subsample):
                kept += 1
                yield frame, labels, name
        counts.unlabelled_images += sum(1 for frame in images if not 1 <= frame < len(lines))
    counts.videos += kept > 0


def generate_examples(jobs: list[VideoJob], label_names: tuple[str, ...], subsample: int) -> Iterator[ImageRow]:
    """Shard body for `arrow_shards.write_split`: rows of `jobs` with image bytes (lines already checked)."""
    for job in jobs:
        counts = SplitCounts(len(label_names))
        for frame, labels, name in video_rows(job, label_names, subsample, "skip", counts):
            yield image_row(os.path.join(job.image_dir, name), f"{job.video}/{name}", labels, job.video, frame)


def read_test_list(path: str | os.PathLike) -> list[tuple[int, str]]:
    """`(line number, video)` of a test list: one video name per line, blank lines ignored."""
    return [(number, line.strip()) for number, line in enumerate(read_lines(path), start=1) if line.strip()]


def plan_jobs(
    images_dir: str | os.PathLike,
    annotations_dir: str | os.PathLike,
    test_list: str | os.PathLike | None,
    on_error: str,
) -> tuple[dict[str, list[VideoJob]], dict[str, int]]:
    """Video jobs per split in a stable order, plus per split the videos skipped for being in two splits."""
    jobs: dict[str, list[VideoJob]] = {}
    skipped: dict[str, int] = {}
    seen: dict[str, str] = {}

    def add(split: str, video: str, source: str, line: int | None, label_path: str | None) -> None:
        if video in seen:
            problem = f"video {video!r} is also in {seen[video]}; a video may be in one split only"
            error = DataFormatError(source, line, problem)
            if on_error == "raise":
                raise error
            skipped[split] = skipped.get(split, 0) + 1
            return
        seen[video] = source if line is None else f"{source}, line {line}"
        jobs[split].append(VideoJob(split, video, label_path, str(Path(images_dir) / video)))

    split_dirs = find_split_dirs(annotations_dir)
    if test_list is not None and "test" in split_dirs:
        raise ValueError(
            f"{split_dirs['test']} holds labelled test videos and the test list {test_list} names unlabelled "
            "ones; both would be the 'test' split: give one of them"
        )
    for split, folder in split_dirs.items():
        jobs[split] = []
        for label_path in sorted(folder.glob("*.txt")):
            add(split, label_path.stem, str(label_path), None, str(label_path))
    if test_list is not None:
        jobs["test"] = []
        for line, video in read_test_list(test_list):
            if not (Path(images_dir) / video).is_dir():
                problem = f"test video {video!r} has no image folder {Path(images_dir) / video}"
                raise DataFormatError(test_list, line, problem)
            add("test", video, str(test_list), line, None)
    return jobs, skipped


def first_header(jobs: dict[str, list[VideoJob]]) -> list[str]:
    """The label names of the first label file, which every other header must match."""
    for split_jobs in jobs.values():
        for job in split_jobs:
            if job.label_path is not None:
                return header_names(job.label_path, read_lines(job.label_path))
    raise FileNotFoundError("no label files (*.txt) in Train_Set/, Validation_Set/ or Test_Set/")


def count_videos(task: tuple[list[VideoJob], tuple[str, ...], int, str]) -> SplitCounts:
    """Validate and count some videos by reading their labels and listing their images (no image is read)."""
    jobs, label_names, subsample, on_error = task
    counts = SplitCounts(len(label_names))
    for job in jobs:
        for _ in video_rows(job, label_names, subsample, on_error, counts):
            pass
    counts.add_pending()
    return counts


def count_split(
    jobs: list[VideoJob], label_names: Sequence[str], subsample: int, on_error: str, split: str, num_proc: int
) -> SplitCounts:
    """Counts of one split, checked `COUNT_CHUNK` videos at a time in parallel; the first error in video order wins."""
    tasks = [
        (jobs[i : i + COUNT_CHUNK], tuple(label_names), subsample, on_error) for i in range(0, len(jobs), COUNT_CHUNK)
    ]
    total = SplitCounts(len(label_names))
    with tqdm(total=len(jobs), desc=f"checking {split} labels", unit="video") as progress:
        for task, counts in zip(tasks, parallel_map(count_videos, tasks, num_proc)):
            total.merge(counts)
            progress.update(len(task[0]))
    return total


def prepare_abaw(
    images_dir: str | os.PathLike,
    annotations_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    num_proc: int = 1,
    subsample: int = 1,
    on_error: str = "raise",
    test_list: str | os.PathLike | None = None,
    push_to_hub: str | None = None,
) -> dict:
    """Convert the ABAW release to a DatasetDict at `output_dir`; returns the report (also in `prepare_report.json`).

    All label files are checked first, so a malformed file stops the run before anything is written.
    """
    check_options(num_proc, subsample, on_error)
    jobs, skipped = plan_jobs(images_dir, annotations_dir, test_list, on_error)
    label_names = first_header(jobs)
    counts = {
        split: count_split(split_jobs, label_names, subsample, on_error, split, num_proc)
        for split, split_jobs in jobs.items()
    }
    for split, number in skipped.items():
        counts[split].skipped_videos += number
    report = make_report(
        label_names,
        counts,
        source="abaw",
        images_dir=str(images_dir),
        annotations_dir=str(annotations_dir),
        test_list=None if test_list is None else str(test_list),
        subsample=subsample,
        on_error=on_error,
    )
    split_kwargs = {
        split: {"jobs": split_jobs, "label_names": tuple(label_names), "subsample": subsample}
        for split, split_jobs in jobs.items()
    }
    output = write_dataset_dict(output_dir, split_kwargs, generate_examples, label_names, report, num_proc)
    return finish(output, report, push_to_hub)
