"""Shared converter machinery: label parsing, counting rules, atomic DatasetDict writing, names, report, push."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, Features, load_from_disk
from PIL import Image
from test_abaw import write_jpeg

from modeling_au_mlt.data.arrow_shards import features_for, image_row
from modeling_au_mlt.data.conversion import (
    DataFormatError,
    HubPushError,
    SplitCounts,
    check_options,
    describe,
    label_names_of,
    make_report,
    parse_label_cells,
    push_dataset_dict,
    report_table,
    write_dataset_dict,
)

NAMES = ["AU1", "AU2", "AU4"]


def test_parse_label_cells():
    assert parse_label_cells([" 1", "0 ", "-1"], NAMES, "f.txt", 7) == [1.0, 0.0, -1.0]
    assert parse_label_cells(["", "1", ""], NAMES, "f.csv", 2, empty_is_unannotated=True) == [-1.0, 1.0, -1.0]
    for cells, problem in [
        (["1", "0"], "expected 3 comma-separated values (AU1,AU2,AU4), found 2"),
        (["1", "0", "01"], "value '01' for AU4 is not one of -1, 0, 1"),
        (["1", "", "0"], "value '' for AU2"),
        (["1", "0", "-2"], "value '-2' for AU4"),
    ]:
        with pytest.raises(DataFormatError, match="^" + re.escape("f.txt, line 7: " + problem)):
            parse_label_cells(cells, NAMES, "f.txt", 7)


def test_counting_rules_and_positive_rate():
    counts = SplitCounts(3)
    rows = [
        ([-1, -1, -1], False, 1),
        ([1, 0, -1], False, 2),
        ([1, 0, -1], True, 4),
        ([1, 1, 0], True, 3),
        ([0, -1, 1], True, 5),
        ([1, 1, 1], True, 6),
    ]
    kept = [labels for labels, image, frame in rows if counts.keeps([float(v) for v in labels], image, frame, 2)]
    assert kept == [[1, 1, 0], [0, -1, 1]]
    counted = (counts.dropped_unannotated, counts.dropped_missing_image, counts.subsampled_out, counts.frames)
    assert counted == (1, 1, 2, 2)
    report = counts.as_report(NAMES)
    truth = np.array(kept, dtype=float)
    for column, name in enumerate(NAMES):
        annotated = truth[:, column][truth[:, column] >= 0]
        assert report["positive_rate"][name] == pytest.approx(annotated.mean())
    assert SplitCounts(1).as_report(["AU9"])["positive_rate"] == {"AU9": None}


def test_merged_counts_equal_counting_in_one_pass():
    rng = np.random.default_rng(0)
    rows = [
        ([float(v) for v in rng.integers(-1, 2, size=3)], bool(rng.random() < 0.9), frame) for frame in range(1, 301)
    ]
    whole, first, second = SplitCounts(3), SplitCounts(3), SplitCounts(3)
    for number, (labels, image, frame) in enumerate(rows):
        whole.keeps(labels, image, frame, 3)
        (first if number < 120 else second).keeps(labels, image, frame, 3)
    first.merge(second)
    assert first.as_report(NAMES) == whole.as_report(NAMES)
    assert pickle.loads(pickle.dumps(DataFormatError("a.txt", 3, "bad"))).args == ("a.txt, line 3: bad",)


def test_on_error_policy():
    counts, error = SplitCounts(3), DataFormatError("a.txt", 3, "bad")
    with pytest.raises(DataFormatError, match="a.txt, line 3: bad"):
        counts.malformed(error, "raise")
    counts.malformed(error, "skip")
    counts.skipped_video(error, "skip")
    assert (counts.malformed_lines, counts.skipped_videos) == (1, 1)
    for bad in [
        dict(num_proc=0, subsample=1, on_error="raise"),
        dict(num_proc=1, subsample=0, on_error="raise"),
        dict(num_proc=1, subsample=1, on_error="ignore"),
    ]:
        with pytest.raises(ValueError):
            check_options(**bad)


def test_report_table_lists_every_count_and_rate():
    train, validation = SplitCounts(3, frames=10, dropped_unannotated=4), SplitCounts(3, frames=7)
    train.positives, train.annotated = [1, 2, 0], [4, 4, 0]
    report = make_report(NAMES, {"train": train, "validation": validation}, subsample=5)
    table = report_table(report).splitlines()
    assert table[0].split() == ["train", "validation"]
    assert table[1 + 1].split() == ["frames", "10", "7"]
    assert table[1 + 2].split() == ["dropped_unannotated", "4", "0"]
    assert table[-3].split() == ["positive_rate", "AU1", "0.250", "-"]
    assert table[-1].split() == ["positive_rate", "AU4", "-", "-"]
    assert json.loads(json.dumps(report))["subsample"] == 5


def rows_from(paths: list[str], frame_offset: int = 1):
    """Generator body: one row per image `<seed>.jpg`, frame = offset + seed (shards see parts of `paths`)."""
    for path in paths:
        seed = int(Path(path).stem)
        yield image_row(path, f"v/{seed}.jpg", [1.0, -1.0, 0.0], "v", frame_offset + seed)


def test_write_dataset_dict_embeds_bytes_keeps_names_and_allows_empty_splits(tmp_path):
    paths = []
    for seed in range(3):
        paths.append(str(tmp_path / f"{seed}.jpg"))
        write_jpeg(tmp_path / f"{seed}.jpg", seed)
    out = tmp_path / "out"
    kwargs = {"train": {"paths": paths, "frame_offset": 1}, "validation": {"paths": [], "frame_offset": 1}}
    report = make_report(NAMES, {"train": SplitCounts(3, frames=3), "validation": SplitCounts(3)}, note="x")
    write_dataset_dict(out, kwargs, rows_from, NAMES, report, num_proc=2)
    originals = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    for path in paths:
        (tmp_path / path).unlink()  # the output must not need the source images any more
    dataset = load_from_disk(str(out))
    assert len(dataset["validation"]) == 0 and dataset["validation"].features == features_for(NAMES)
    assert dataset["train"]["frame"] == [1, 2, 3] and dataset["train"]["labels"][0] == [1.0, -1.0, 0.0]
    assert json.loads((out / "prepare_report.json").read_text()) == report
    assert json.loads((out / "label_names.json").read_text()) == NAMES
    assert label_names_of(dataset) == NAMES and label_names_of(dataset["validation"]) == NAMES
    assert label_names_of(dataset["train"].select([1]).map(lambda row: row)) == NAMES
    for row, original in zip(dataset["train"], originals):
        np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), original)


def test_label_names_missing_or_inconsistent():
    labels_only = Features({"labels": features_for(["A", "B"])["labels"]})
    plain = Dataset.from_dict({"labels": [[0.0, 1.0]]}, features=labels_only)
    with pytest.raises(ValueError, match="no AU label names"):
        label_names_of(DatasetDict({"train": plain}))
    plain.info.description = describe(NAMES)
    with pytest.raises(ValueError, match="names 3 labels but `labels` holds 2"):
        label_names_of(plain)


def test_failed_generation_leaves_nothing_and_foreign_folders_are_kept(tmp_path):
    def broken(shards):
        yield from ()
        raise OSError("source vanished")

    out = tmp_path / "out"
    with pytest.raises(Exception) as raised:
        report = make_report(NAMES, {"train": SplitCounts(3)})
        write_dataset_dict(out, {"train": {"shards": [1, 2]}}, broken, NAMES, report)
    assert "source vanished" in repr(raised.value) + repr(raised.value.__cause__)
    assert list(tmp_path.iterdir()) == []


def test_push_offline_names_the_complete_local_copy(tmp_path):
    out = tmp_path / "out"
    write_dataset_dict(out, {"train": {"paths": []}}, rows_from, NAMES, make_report(NAMES, {"train": SplitCounts(3)}))
    with pytest.raises(HubPushError, match=f"complete at {out}, but pushing it to me/frames failed"):
        push_dataset_dict(out, "me/frames")
    assert load_from_disk(str(out))["train"].num_rows == 0


def test_split_metadata_matches_what_save_to_disk_writes(tmp_path):
    """Shards are written in place of save_to_disk; its metadata files must carry the same fields."""
    out = tmp_path / "ours"
    write_jpeg(tmp_path / "0.jpg", 0)
    report = make_report(NAMES, {"train": SplitCounts(3, frames=1)})
    write_dataset_dict(out, {"train": {"paths": [str(tmp_path / "0.jpg")]}}, rows_from, NAMES, report)
    load_from_disk(str(out)).save_to_disk(str(tmp_path / "theirs"))
    for name in ("state.json", "dataset_info.json"):
        ours = json.loads((out / "train" / name).read_text())
        theirs = json.loads((tmp_path / "theirs" / "train" / name).read_text())
        assert sorted(ours) == sorted(theirs)
    theirs = json.loads((tmp_path / "theirs" / "dataset_dict.json").read_text())
    assert json.loads((out / "dataset_dict.json").read_text()) == theirs
