"""CSV source: image path column + one column per AU -> the same DatasetDict as the ABAW converter."""

from pathlib import Path

import numpy as np
import pytest
from conftest import run_script
from datasets import load_from_disk
from PIL import Image
from test_abaw import assert_no_output, rows_of, write_jpeg

from modeling_au_mlt.data.conversion import DataFormatError, label_names_of
from modeling_au_mlt.data.tabular import prepare_csv

HEADER = ["image", "split", "AU1", "AU2", "AU4", "subject"]
# (image, split, AU1, AU2, AU4, subject, image written?)
ROWS = [
    ("S001/T1/0001.jpg", "train", "1", "0", "1", "S001", True),
    ("S001/T1/0002.jpg", "train", "", "0", "-1", "S001", True),
    ("S001/T1/0003.jpg", "train", "-1", "-1", "-1", "S001", True),
    ("S001/T1/0004.jpg", "train", "1", "1", "1", "S001", False),
    ("S002/T1/0001.jpg", "validation", "0", "0", "1", "S002", True),
    ("S002/T1/0002.jpg", "validation", "1", "0", "0", "S002", True),
    ("S003/T2/frame_0010.jpg", "train", "0", "1", "0", "S003", True),
]


def as_label(cell: str) -> float:
    return -1.0 if cell == "" else float(cell)


def expected_rows(split: str, subsample: int = 1) -> dict[tuple[str, int], list[float]]:
    """(video, frame) -> labels a correct converter keeps: folder is the video, last number the frame."""
    expected = {}
    for image, row_split, *cells, _, written in ROWS:
        labels = [as_label(cell) for cell in cells]
        frame = int(Path(image).stem.split("_")[-1])
        if row_split == split and written and labels != [-1.0] * 3 and (frame - 1) % subsample == 0:
            expected[(str(Path(image).parent), frame)] = labels
    return expected


def write_csv(root: Path, rows=ROWS, extra_lines: dict[int, str] | None = None) -> Path:
    """Images under root/frames and root/frames/labels.csv with CRLF endings, a quoted cell, a blank line."""
    frames = root / "frames"
    lines = [",".join(HEADER)]
    for number, (image, *cells, written) in enumerate(rows):
        if written:
            write_jpeg(frames / image, seed=number)
        lines.append(",".join([f'"{image}"' if number == 4 else image] + cells))
    lines.insert(6, "")
    for line, text in (extra_lines or {}).items():
        lines[line - 1] = text
    path = frames / "labels.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())
    return path


def test_counts_labels_pixels(tmp_path):
    csv_path = write_csv(tmp_path)
    out = tmp_path / "out"
    report = prepare_csv(csv_path, out, split_column="split")
    dataset = load_from_disk(str(out))
    assert sorted(dataset) == ["train", "validation"]
    assert rows_of(dataset["train"]) == expected_rows("train")
    assert rows_of(dataset["validation"]) == expected_rows("validation")
    assert label_names_of(dataset) == ["AU1", "AU2", "AU4"]
    train = report["splits"]["train"]
    counted = (train["videos"], train["frames"], train["dropped_unannotated"], train["dropped_missing_image"])
    assert counted == (2, 3, 1, 1)
    assert train["positive_rate"] == {"AU1": 0.5, "AU2": pytest.approx(1 / 3), "AU4": 0.5}
    for row in dataset["train"]:
        path = next(tmp_path.joinpath("frames", row["video_id"]).glob(f"*{row['frame']:04d}.jpg"))
        written = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), written)


def test_parallel_gives_the_same_rows_in_the_same_order(tmp_path):
    csv_path = write_csv(tmp_path)
    prepare_csv(csv_path, tmp_path / "one", split_column="split")
    prepare_csv(csv_path, tmp_path / "two", split_column="split", num_proc=2)
    one, two = load_from_disk(str(tmp_path / "one")), load_from_disk(str(tmp_path / "two"))
    for split in one:
        assert (
            one[split].select_columns(["video_id", "frame", "labels"]).to_list()
            == two[split].select_columns(["video_id", "frame", "labels"]).to_list()
        )


def test_without_split_column_everything_is_train_and_columns_can_be_named(tmp_path):
    csv_path = write_csv(tmp_path)
    report = prepare_csv(csv_path, tmp_path / "out", label_columns=["AU4", "AU1"], video_column="subject")
    dataset = load_from_disk(str(tmp_path / "out"))
    assert list(dataset) == ["train"] and label_names_of(dataset) == ["AU4", "AU1"]
    expected = {}
    for image, _, au1, _, au4, subject, written in ROWS:
        labels = [as_label(au4), as_label(au1)]
        if written and labels != [-1.0, -1.0]:
            expected[(subject, int(Path(image).stem.split("_")[-1]))] = labels
    assert rows_of(dataset["train"]) == expected
    assert report["splits"]["train"]["videos"] == 3


def test_subsample(tmp_path):
    csv_path = write_csv(tmp_path)
    report = prepare_csv(csv_path, tmp_path / "out", split_column="split", subsample=2)
    dataset = load_from_disk(str(tmp_path / "out"))
    assert rows_of(dataset["train"]) == expected_rows("train", subsample=2)
    assert rows_of(dataset["validation"]) == expected_rows("validation", subsample=2)
    assert report["splits"]["train"]["subsampled_out"] == 2  # S001 frame 2, S003 frame 10


MALFORMED = {  # CSV line -> (text, expected problem); line 1 is the header, line 7 the blank line
    "too many cells": (3, "S001/T1/0002.jpg,train,1,0,1,S001,extra", "expected 6 cells"),
    "bad value": (2, "S001/T1/0001.jpg,train,1,0,2,S001", "'2' for AU4"),
    "bad split": (2, "S001/T1/0001.jpg,,1,0,1,S001", "split ''"),
    "empty image": (5, ",train,1,0,1,S001", "empty image path"),
    "video in two splits": (8, "S001/T1/0009.jpg,validation,1,0,1,S001", "'S001/T1' is in split 'validation' here"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_row_names_csv_and_line(tmp_path, case):
    line, text, problem = MALFORMED[case]
    csv_path = write_csv(tmp_path, extra_lines={line: text})
    with pytest.raises(DataFormatError) as raised:
        prepare_csv(csv_path, tmp_path / "out", split_column="split")
    assert f"{csv_path}, line {line}: " in str(raised.value) and problem in str(raised.value)
    assert_no_output(tmp_path / "out")


def test_missing_column_is_named(tmp_path):
    csv_path = write_csv(tmp_path)
    with pytest.raises(DataFormatError, match=r"line 1: no split column 'fold'"):
        prepare_csv(csv_path, tmp_path / "out", split_column="fold")
    with pytest.raises(DataFormatError, match=r"line 1: no image column 'path'"):
        prepare_csv(csv_path, tmp_path / "out", image_column="path")


def test_header_only_csv_is_an_error(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("image,AU1\n\n")
    with pytest.raises(DataFormatError, match="no data rows"):
        prepare_csv(csv_path, tmp_path / "out")
    assert_no_output(tmp_path / "out")


def test_skip_counts_malformed_rows(tmp_path):
    csv_path = write_csv(
        tmp_path,
        extra_lines={
            2: "S001/T1/0001.jpg,train,9,0,1,S001",
            8: "S001/T1/0009.jpg,validation,1,0,1,S001",
            5: "S001/T1/0004.jpg,,1,1,1,S001",
        },
    )
    report = prepare_csv(csv_path, tmp_path / "out", split_column="split", on_error="skip")
    assert report["splits"]["train"]["malformed_lines"] == 1
    assert report["splits"]["validation"]["malformed_lines"] == 1
    assert report["malformed_lines_without_split"] == 1
    dataset = load_from_disk(str(tmp_path / "out"))
    assert rows_of(dataset["train"]) == {k: v for k, v in expected_rows("train").items() if k != ("S001/T1", 1)}
    # line 8 held S002/T1 frame 2; its replacement is skipped for naming a train video
    expected = {k: v for k, v in expected_rows("validation").items() if k != ("S002/T1", 2)}
    assert rows_of(dataset["validation"]) == expected


def test_cli(tmp_path):
    csv_path = write_csv(tmp_path)
    done = run_script(
        "prepare_csv.py",
        "--csv",
        csv_path,
        "--output_dir",
        tmp_path / "out",
        "--split_column",
        "split",
        "--label_columns",
        "AU1,AU2,AU4",
        "--image_root",
        tmp_path / "frames",
        "--subsample",
        "1",
    )
    assert "positive_rate AU4" in done.stdout
    assert rows_of(load_from_disk(str(tmp_path / "out"))["validation"]) == expected_rows("validation")
