"""Shared part of the AU data converters: counting, Arrow writing, atomic output, report, upload.

Both sources (`abaw.py` for the ABAW release, `tabular.py` for a CSV) count and validate every row
first (`SplitCounts`, `DataFormatError`, so bad input stops the run before anything is written), then
hand a generator of rows per split to `arrow_shards.write_split`, which streams them to Arrow; peak
memory depends on one record batch, never on the number of frames.

Output columns: `image` (`Image()`, the original file's bytes embedded, so the folder is self-contained
and pixels are exactly the source file's), `labels` (fixed-length list of float32, one per AU, -1 kept
for "not annotated"), `video_id` (string), `frame` (int32, 1-based frame number).

Where the AU names live: `datasets` keeps no free-form metadata in `Features` (a feature's `id` is
dropped on save), so the names are written into each split's `DatasetInfo.description` as one line
``label_names: ["AU1", ...]`` (survives `save_to_disk`/`load_from_disk`, `select`, `map`, ...), and
beside the data as `OUT/label_names.json` for people and other tools. `push_to_hub` keeps only the
features and split sizes of the info, so `label_names.json` and `prepare_report.json` are uploaded to
the dataset repo as files too; a dataset loaded back from the Hub has no names in its info (read that
file, or the model config). `label_names_of` reads the names back from a converted dataset.

Output is written to a hidden temporary folder next to `OUT` and renamed into place only when complete
(an existing `OUT` from an earlier run is replaced at that moment), so an interrupted or failed run
never leaves a half-written `OUT`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, DatasetInfo, config, load_from_disk
from huggingface_hub import HfApi

from ..atomic_io import replace_dir, write_json
from ..configuration_au_mlt import NOT_ANNOTATED
from .arrow_shards import features_for, write_split

LABEL_VALUES = {str(NOT_ANNOTATED): float(NOT_ANNOTATED), "0": 0.0, "1": 1.0}
ON_ERROR_CHOICES = ("raise", "skip")
REPORT_FILE = "prepare_report.json"
PENDING_ROWS = 4096  # kept label rows buffered before they are summed
LABEL_NAMES_FILE = "label_names.json"
_DESCRIPTION_KEY = "label_names: "
# Files that mark a folder as an earlier output of this converter (and so safe to replace).
_OUTPUT_MARKERS = (REPORT_FILE, config.DATASETDICT_JSON_FILENAME)

logger = logging.getLogger(__name__)


class DataFormatError(ValueError):
    """A source file breaks the expected layout; the message names the file and the line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # Rebuilt from its three fields when a worker process sends it back to the parent.
        return DataFormatError, (self.path, self.line, self.problem)


class HubPushError(RuntimeError):
    """The local dataset is complete but uploading it failed (e.g. offline)."""


def parse_label_cells(
    cells: Sequence[str],
    label_names: Sequence[str],
    path: str | os.PathLike,
    line: int,
    empty_is_unannotated: bool = False,
) -> list[float]:
    """Label values of one line, in `label_names` order; raises `DataFormatError` naming the bad value."""
    if len(cells) != len(label_names):
        raise DataFormatError(
            path,
            line,
            f"expected {len(label_names)} comma-separated values ({','.join(label_names)}), found {len(cells)}",
        )
    try:
        return [LABEL_VALUES[cell] for cell in cells]  # fast path: the release writes bare -1/0/1
    except KeyError:
        pass
    values = []
    for name, cell in zip(label_names, cells):
        text = cell.strip()
        if text == "" and empty_is_unannotated:
            values.append(float(NOT_ANNOTATED))
        elif text in LABEL_VALUES:
            values.append(LABEL_VALUES[text])
        else:
            raise DataFormatError(path, line, f"value {cell!r} for {name} is not one of -1, 0, 1")
    return values


@dataclass
class SplitCounts:
    """What happened to every frame of one split; the report is built from these counts."""

    num_labels: int
    videos: int = 0
    frames: int = 0
    dropped_unannotated: int = 0
    dropped_missing_image: int = 0
    unlabelled_images: int = 0
    malformed_lines: int = 0
    skipped_videos: int = 0
    subsampled_out: int = 0
    positives: list[int] = field(default_factory=list)
    annotated: list[int] = field(default_factory=list)
    # Kept label rows not yet added to positives/annotated; summed with numpy every PENDING_ROWS rows.
    pending: list[Sequence[float]] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.positives = self.positives or [0] * self.num_labels
        self.annotated = self.annotated or [0] * self.num_labels

    def keeps(self, labels: Sequence[float], has_image: bool, frame: int, subsample: int) -> bool:
        """Decide one annotated frame's fate (in this order: unannotated, no image, subsample) and count it."""
        if labels.count(NOT_ANNOTATED) == len(labels):
            self.dropped_unannotated += 1
            return False
        if not self.keeps_image(has_image, frame, subsample):
            return False
        self.pending.append(labels)
        if len(self.pending) >= PENDING_ROWS:
            self.add_pending()
        return True

    def add_pending(self) -> None:
        """Fold the pending kept rows into the per-AU positive and annotated counts."""
        if self.pending:
            rows = np.asarray(self.pending, dtype=np.float32)  # (pending, num_labels)
            self.positives = [a + int(b) for a, b in zip(self.positives, (rows == 1.0).sum(axis=0))]
            self.annotated = [a + int(b) for a, b in zip(self.annotated, (rows != NOT_ANNOTATED).sum(axis=0))]
            self.pending = []

    def keeps_image(self, has_image: bool, frame: int, subsample: int) -> bool:
        """Decide a frame's fate by its image and frame number alone (test frames have no labels) and count it."""
        if not has_image:
            self.dropped_missing_image += 1
            return False
        if (frame - 1) % subsample:
            self.subsampled_out += 1
            return False
        self.frames += 1
        return True

    def merge(self, other: SplitCounts) -> None:
        """Add another part's counts (e.g. from a worker process) to these."""
        self.add_pending()
        other.add_pending()
        for key in REPORT_COUNT_KEYS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.positives = [a + b for a, b in zip(self.positives, other.positives)]
        self.annotated = [a + b for a, b in zip(self.annotated, other.annotated)]

    def malformed(self, error: DataFormatError, on_error: str) -> None:
        """Raise the error, or count the line as skipped under `on_error="skip"`."""
        if on_error == "raise":
            raise error
        self.malformed_lines += 1

    def skipped_video(self, error: DataFormatError, on_error: str) -> None:
        """Raise the error, or count a whole video as skipped under `on_error="skip"`."""
        if on_error == "raise":
            raise error
        self.skipped_videos += 1

    def as_report(self, label_names: Sequence[str]) -> dict:
        """JSON-ready summary: counts plus the rate of 1s among annotated entries of kept rows."""
        self.add_pending()
        rates = {
            name: (self.positives[i] / self.annotated[i] if self.annotated[i] else None)
            for i, name in enumerate(label_names)
        }
        counts = {key: getattr(self, key) for key in REPORT_COUNT_KEYS}
        return {**counts, "positive_rate": rates}


REPORT_COUNT_KEYS = (
    "videos",
    "frames",
    "dropped_unannotated",
    "dropped_missing_image",
    "unlabelled_images",
    "malformed_lines",
    "skipped_videos",
    "subsampled_out",
)


def check_options(num_proc: int, subsample: int, on_error: str) -> None:
    """Reject option values the converters cannot honour, before any work starts."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    if subsample < 1:
        raise ValueError(f"subsample must be >= 1, got {subsample}")
    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")


def describe(label_names: Sequence[str]) -> str:
    """The `DatasetInfo.description` text that carries the AU names (see module docstring)."""
    return (
        f"Facial Action Unit frames converted by modeling_au_mlt.\n{_DESCRIPTION_KEY}{json.dumps(list(label_names))}"
    )


def label_names_of(dataset: Dataset | DatasetDict) -> list[str]:
    """The AU names, in `labels` order, of a dataset written by these converters."""
    first = next(iter(dataset.values())) if isinstance(dataset, DatasetDict) else dataset
    for line in (first.info.description or "").splitlines():
        if line.startswith(_DESCRIPTION_KEY):
            names = json.loads(line[len(_DESCRIPTION_KEY) :])
            expected = first.features["labels"].length
            if len(names) != expected:
                raise ValueError(f"dataset description names {len(names)} labels but `labels` holds {expected}")
            return names
    raise ValueError(
        "no AU label names in this dataset's info.description (a dataset loaded from the Hub loses them; "
        f"read {LABEL_NAMES_FILE} from the converted folder or the model config instead)"
    )


def write_dataset_dict(
    output_dir: str | os.PathLike,
    split_gen_kwargs: dict[str, dict],
    generator: Callable[..., Iterable],
    label_names: Sequence[str],
    report: dict,
    num_proc: int = 1,
) -> Path:
    """Stream every split, save the DatasetDict plus report and names, then move it into place atomically."""
    output_dir = Path(output_dir).resolve()
    check_replaceable(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        info = DatasetInfo(description=describe(label_names), features=features_for(label_names))
        complete = staging / "dataset"
        for split, kwargs in split_gen_kwargs.items():
            expected = report["splits"][split]["frames"]
            written = write_split(generator, kwargs, info, num_proc, complete / split, split, expected)
            if written != expected:
                raise RuntimeError(f"{split}: wrote {written} rows but counted {expected}; did the source change?")
        (complete / config.DATASETDICT_JSON_FILENAME).write_text(json.dumps({"splits": list(split_gen_kwargs)}))
        (complete / LABEL_NAMES_FILE).write_text(json.dumps(list(label_names)) + "\n")
        write_json(complete / REPORT_FILE, report)
        replace_dir(complete, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def check_replaceable(output_dir: Path) -> None:
    """Refuse to overwrite a non-empty folder that is not an earlier output of this converter."""
    if output_dir.exists() and (
        not output_dir.is_dir()
        or (any(output_dir.iterdir()) and not any((output_dir / marker).exists() for marker in _OUTPUT_MARKERS))
    ):
        raise FileExistsError(f"{output_dir} exists and is not an earlier converter output; choose another output")


def make_report(label_names: Sequence[str], counts: dict[str, SplitCounts], **settings) -> dict:
    """The `prepare_report.json` content: settings, label names and per-split counts."""
    return {
        **settings,
        "label_names": list(label_names),
        "splits": {split: split_counts.as_report(label_names) for split, split_counts in counts.items()},
    }


def report_table(report: dict) -> str:
    """The report as a plain-text table: one row per count or AU rate, one column per split."""
    splits = list(report["splits"])
    rows = [[key] + [str(report["splits"][split][key]) for split in splits] for key in REPORT_COUNT_KEYS]
    for name in report["label_names"]:
        rates = [report["splits"][split]["positive_rate"][name] for split in splits]
        rows.append([f"positive_rate {name}"] + ["-" if rate is None else f"{rate:.3f}" for rate in rates])
    table = [[""] + splits] + rows
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in table)


def push_dataset_dict(output_dir: str | os.PathLike, repo_id: str) -> None:
    """Upload a finished local copy with `DatasetDict.push_to_hub`; failure keeps the local copy and says so."""
    try:
        load_from_disk(str(output_dir)).push_to_hub(repo_id)
        # The Hub copy keeps no info.description, so the names and the report travel as files beside it.
        for sidecar in (LABEL_NAMES_FILE, REPORT_FILE):
            HfApi().upload_file(
                path_or_fileobj=str(Path(output_dir) / sidecar),
                path_in_repo=sidecar,
                repo_id=repo_id,
                repo_type="dataset",
            )
    except Exception as error:  # offline, auth and network errors all end the same way for the user
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true")
        reason = " (HF_HUB_OFFLINE is set: no network access)" if offline else ""
        raise HubPushError(
            f"the dataset is complete at {output_dir}, but pushing it to {repo_id} failed{reason}: "
            f"{str(error).rstrip('.')}. "
            f'Upload it later with: python -c "from datasets import load_from_disk; '
            f"load_from_disk('{output_dir}').push_to_hub('{repo_id}')\""
        ) from error


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options every converter shares (output, parallelism, subsampling, errors, upload)."""
    parser.add_argument("--output_dir", required=True, help="where the DatasetDict is saved (replaced atomically)")
    parser.add_argument("--num_proc", type=int, default=1, help="worker processes (parallel over videos)")
    parser.add_argument("--subsample", type=int, default=1, help="keep every K-th frame of each video")
    parser.add_argument(
        "--on_error", choices=ON_ERROR_CHOICES, default="raise", help="stop at or skip malformed input"
    )
    parser.add_argument("--push_to_hub", default=None, help="Hub dataset repo id to upload to after saving")


def common_options(args: argparse.Namespace) -> dict:
    """The converter keyword arguments of the options `add_common_arguments` adds, except `output_dir`."""
    return {name: getattr(args, name) for name in ("num_proc", "subsample", "on_error", "push_to_hub")}


def exit_code(convert: Callable[[], dict]) -> int:
    """Run a converter for a command line: 0 on success, 1 with the error logged for bad input or upload."""
    try:
        convert()
    except (DataFormatError, HubPushError, FileNotFoundError, FileExistsError, ValueError) as error:
        logger.error("%s", error)
        return 1
    return 0


def finish(output_dir: Path, report: dict, push_to_hub: str | None) -> dict:
    """Log the report table and where the dataset is, then upload if asked; returns the report."""
    logger.info("%s\nwrote %s", report_table(report), output_dir)
    if push_to_hub:
        push_dataset_dict(output_dir, push_to_hub)
    return report
