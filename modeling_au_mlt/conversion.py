"""Shared part of the AU data converters: counting, Arrow writing, atomic output, report, upload.

Both sources (`abaw.py` for the ABAW release, `tabular.py` for a CSV) describe their rows as a list of
picklable jobs per split plus a top-level generator function; this module turns them into a
`datasets.DatasetDict` by streaming (`Dataset.from_generator`, parallel over jobs with `num_proc`), so
peak memory depends on the size of one job (one video), never on the number of frames.

Output columns: `image` (`Image()`, the original file's bytes embedded, so the folder is self-contained
and pixels are exactly the source file's), `labels` (fixed-length list of float32, one per AU, -1 kept
for "not annotated"), `video_id` (string), `frame` (int32, 1-based frame number).

Where the AU names live: `datasets` keeps no free-form metadata in `Features` (a feature's `id` is
dropped on save), so the names are written into each split's `DatasetInfo.description` as one line
``label_names: ["AU1", ...]`` (survives `save_to_disk`/`load_from_disk`, `select`, `map`, ...), and
beside the data as `OUT/label_names.json` for people and other tools. `push_to_hub` uploads only the
features and split sizes of the info, so a dataset loaded back from the Hub has lost the names: take
them from the model config or from `label_names.json` in that case. `label_names_of` reads them back.

Output is written to a hidden temporary folder next to `OUT` and renamed into place only when complete
(an existing `OUT` from an earlier run is replaced at that moment), so an interrupted or failed run
never leaves a half-written `OUT`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from datasets import Dataset, DatasetDict, Features, Image, List, Value, load_from_disk

NOT_ANNOTATED = -1.0
LABEL_VALUES = {"-1": -1.0, "0": 0.0, "1": 1.0}
ON_ERROR_CHOICES = ("raise", "skip")
REPORT_FILE = "prepare_report.json"
LABEL_NAMES_FILE = "label_names.json"
_DESCRIPTION_KEY = "label_names: "
# Files that mark a folder as an earlier output of this converter (and so safe to replace).
_OUTPUT_MARKERS = (REPORT_FILE, "dataset_dict.json")


class DataFormatError(ValueError):
    """A source file breaks the expected layout; the message names the file and the line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class HubPushError(RuntimeError):
    """The local dataset is complete but uploading it failed (e.g. offline)."""


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


def parse_label_cells(
    cells: Sequence[str], label_names: Sequence[str], path: str | os.PathLike, line: int, empty_is_unannotated: bool = False
) -> list[float]:
    """Label values of one line, in `label_names` order; raises `DataFormatError` naming the bad value."""
    if len(cells) != len(label_names):
        raise DataFormatError(
            path, line, f"expected {len(label_names)} comma-separated values ({','.join(label_names)}), found {len(cells)}"
        )
    values = []
    for name, cell in zip(label_names, cells):
        text = cell.strip()
        if text == "" and empty_is_unannotated:
            values.append(NOT_ANNOTATED)
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

    def __post_init__(self):
        self.positives = self.positives or [0] * self.num_labels
        self.annotated = self.annotated or [0] * self.num_labels

    def keeps(self, labels: Sequence[float], has_image: bool, frame: int, subsample: int) -> bool:
        """Decide one annotated frame's fate (in this order: unannotated, no image, subsample) and count it."""
        if all(value == NOT_ANNOTATED for value in labels):
            self.dropped_unannotated += 1
            return False
        if not self.keeps_image(has_image, frame, subsample):
            return False
        for index, value in enumerate(labels):
            if value != NOT_ANNOTATED:
                self.annotated[index] += 1
                self.positives[index] += value == 1.0
        return True

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
        rates = {
            name: (self.positives[i] / self.annotated[i] if self.annotated[i] else None) for i, name in enumerate(label_names)
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


def image_example(image_path: str | os.PathLike, relative_path: str, labels: Sequence[float], video_id: str, frame: int) -> dict:
    """One output row with the image file's bytes embedded unchanged (no decode/re-encode)."""
    with open(image_path, "rb") as handle:
        data = handle.read()
    return {"image": {"bytes": data, "path": relative_path}, "labels": labels, "video_id": video_id, "frame": frame}


def describe(label_names: Sequence[str]) -> str:
    """The `DatasetInfo.description` text that carries the AU names (see module docstring)."""
    return f"Facial Action Unit frames converted by modeling_au_mlt.\n{_DESCRIPTION_KEY}{json.dumps(list(label_names))}"


def label_names_of(dataset: Dataset | DatasetDict) -> list[str]:
    """The AU names, in `labels` order, of a dataset written by these converters."""
    first = next(iter(dataset.values())) if isinstance(dataset, DatasetDict) else dataset
    for line in (first.info.description or "").splitlines():
        if line.startswith(_DESCRIPTION_KEY):
            names = json.loads(line[len(_DESCRIPTION_KEY):])
            expected = first.features["labels"].length
            if len(names) != expected:
                raise ValueError(f"dataset description names {len(names)} labels but `labels` holds {expected}")
            return names
    raise ValueError(
        "no AU label names in this dataset's info.description (a dataset loaded from the Hub loses them; "
        f"read {LABEL_NAMES_FILE} from the converted folder or the model config instead)"
    )


def build_split(
    generator: Callable[..., Iterable[dict]], gen_kwargs: dict, features: Features, num_proc: int, cache_dir: Path, split: str
) -> Dataset:
    """Stream one split to Arrow; list values in `gen_kwargs` are the shards spread over `num_proc` workers."""
    shards = next((value for value in gen_kwargs.values() if isinstance(value, list)), [])
    if not shards:
        return Dataset.from_dict({name: [] for name in features}, features=features, split=split)
    return Dataset.from_generator(
        generator,
        features=features,
        gen_kwargs=gen_kwargs,
        num_proc=min(num_proc, len(shards)) if num_proc > 1 else None,
        cache_dir=str(cache_dir),
        split=split,
    )


def write_dataset_dict(
    output_dir: str | os.PathLike,
    split_gen_kwargs: dict[str, dict],
    generator: Callable[..., Iterable[dict]],
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
        features = features_for(label_names)
        splits = DatasetDict(
            {
                split: build_split(generator, kwargs, features, num_proc, staging / "cache", split)
                for split, kwargs in split_gen_kwargs.items()
            }
        )
        for dataset in splits.values():
            dataset.info.description = describe(label_names)
        complete = staging / "dataset"
        # One process: copying Arrow batches is I/O bound, and save_to_disk(num_proc) would spawn fresh interpreters.
        # An empty split must still get one (empty) shard: with none, load_from_disk fails on it.
        empty = {split: 1 for split, dataset in splits.items() if dataset.num_rows == 0}
        splits.save_to_disk(str(complete), num_shards=empty or None)
        (complete / LABEL_NAMES_FILE).write_text(json.dumps(list(label_names)) + "\n")
        (complete / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        del splits
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
        raise FileExistsError(f"{output_dir} exists and is not an earlier converter output; choose another --output_dir")


def replace_dir(complete: Path, output_dir: Path) -> None:
    """Rename `complete` to `output_dir`; an earlier output is moved aside first and deleted after."""
    if not output_dir.exists():
        os.replace(complete, output_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
    os.replace(output_dir, old / "previous")
    os.replace(complete, output_dir)
    shutil.rmtree(old, ignore_errors=True)


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
    except Exception as error:  # offline, auth and network errors all end the same way for the user
        offline = " (HF_HUB_OFFLINE is set: no network access)" if os.environ.get("HF_HUB_OFFLINE") in ("1", "true") else ""
        raise HubPushError(
            f"the dataset is complete at {output_dir}, but pushing it to {repo_id} failed{offline}: {str(error).rstrip('.')}. "
            f"Upload it later with: python -c \"from datasets import load_from_disk; "
            f"load_from_disk('{output_dir}').push_to_hub('{repo_id}')\""
        ) from error


def exit_code(convert: Callable[[], dict]) -> int:
    """Run a converter for a command line: 0 on success, 1 with the error on stderr for bad input or upload."""
    try:
        convert()
    except (DataFormatError, HubPushError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def finish(output_dir: Path, report: dict, push_to_hub: str | None) -> dict:
    """Print the report table and upload if asked; returns the report."""
    print(report_table(report))
    print(f"wrote {output_dir}")
    if push_to_hub:
        push_dataset_dict(output_dir, push_to_hub)
    return report
