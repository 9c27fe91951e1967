"""ABAW converter on a small release tree written here with every quirk of the real one.

Truth comes from the tree's own description (`VIDEOS` below): the expected rows are recomputed from it
with plain comprehensions, and pixels are compared with the JPEG files as PIL decodes them.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, run_script
from datasets import load_from_disk
from PIL import Image

from modeling_au_mlt.data import abaw
from modeling_au_mlt.data.abaw import prepare_abaw
from modeling_au_mlt.data.conversion import DataFormatError, label_names_of

AUS = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
ALL_MISSING = [-1] * 12


def labels_row(seed: int) -> list[int]:
    """A reproducible row of 0/1 labels with one -1 entry when seed is odd."""
    row = [int(v) for v in np.random.default_rng(seed).integers(0, 2, size=12)]
    if seed % 2:
        row[seed % 12] = -1
    return row


# video -> (split folder, label rows for frames 1.., frames that have an image, header order, line ending)
VIDEOS = {
    "vid1": (
        "Train_Set",
        [labels_row(1), labels_row(2), ALL_MISSING, labels_row(4), labels_row(5), labels_row(6)],
        {1, 2, 3, 4, 6, 7, 8},
        AUS,
        "\r\n",
    ),
    "vid2_left": ("Train_Set", [labels_row(11), labels_row(12), labels_row(13)], {1, 2, 3}, AUS[::-1], "\n"),
    "vid2_right": ("Train_Set", [labels_row(21), ALL_MISSING, labels_row(23), labels_row(24)], {1, 2, 4}, AUS, "\n"),
    "vid3": (
        "Validation_Set",
        [labels_row(31), labels_row(32), labels_row(33), labels_row(34), labels_row(35)],
        {1, 2, 3, 4, 5},
        AUS,
        "\r\n",
    ),
}
TEST_VIDEO, TEST_FRAMES = "vid4", {1, 2, 3}
SPLIT_OF_FOLDER = {"Train_Set": "train", "Validation_Set": "validation"}


def write_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def label_text(header: list[str], rows: list[list[int]], newline: str) -> str:
    """A label file: header, then rows with columns permuted to `header`'s order, trailing blank lines."""
    lines = [",".join(header)] + [",".join(str(row[AUS.index(name)]) for name in header) for row in rows]
    return newline.join(lines) + newline + newline + newline


def write_tree(root: Path, parent: str = "AU_Detection_Challenge") -> tuple[Path, Path]:
    """Write images and label files as the release lays them out; returns (images_dir, annotations_dir)."""
    images, annotations = root / "cropped_aligned", root / parent
    for number, (video, (folder, rows, frames, header, newline)) in enumerate(VIDEOS.items()):
        for frame in frames:
            write_jpeg(images / video / f"{frame:05d}.jpg", seed=100 * number + frame)
        (annotations / folder).mkdir(parents=True, exist_ok=True)
        (annotations / folder / f"{video}.txt").write_bytes(label_text(header, rows, newline).encode())
    for frame in TEST_FRAMES:
        write_jpeg(images / TEST_VIDEO / f"{frame:05d}.jpg", seed=900 + frame)
    (images / "unlisted_video").mkdir()
    write_jpeg(images / "unlisted_video" / "00001.jpg", seed=999)
    return images, annotations


def expected_rows(split: str, subsample: int = 1) -> dict[tuple[str, int], list[int]]:
    """(video, frame) -> labels of the rows a correct converter keeps, straight from the spec."""
    return {
        (video, frame): row
        for video, (folder, rows, frames, _, _) in VIDEOS.items()
        if SPLIT_OF_FOLDER[folder] == split
        for frame, row in enumerate(rows, start=1)
        if row != ALL_MISSING and frame in frames and (frame - 1) % subsample == 0
    }


def rows_of(dataset) -> dict[tuple[str, int], list[float]]:
    table = dataset.select_columns(["video_id", "frame", "labels"])
    return {(r["video_id"], r["frame"]): r["labels"] for r in table}


def assert_no_output(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


@pytest.fixture
def tree(tmp_path):
    images, annotations = write_tree(tmp_path / "release")
    return images, annotations, tmp_path / "out"


def test_counts_labels_and_splits(tree):
    images, annotations, out = tree
    report = prepare_abaw(images, annotations, out)
    dataset = load_from_disk(str(out))
    assert sorted(dataset) == ["train", "validation"]
    for split in ("train", "validation"):
        assert rows_of(dataset[split]) == expected_rows(split)
    train = report["splits"]["train"]
    assert train == json.loads((out / "prepare_report.json").read_text())["splits"]["train"]
    assert (train["videos"], train["frames"]) == (3, 4 + 3 + 2)
    assert train["dropped_unannotated"] == 2  # vid1 line 3, vid2_right line 2
    assert train["dropped_missing_image"] == 2  # vid1 frame 5, vid2_right frame 3
    assert train["unlabelled_images"] == 2  # vid1 frames 7 and 8 have no label line
    assert train["malformed_lines"] == train["skipped_videos"] == train["subsampled_out"] == 0
    kept = np.array(list(expected_rows("train").values()))
    for column, name in enumerate(AUS):
        annotated = kept[:, column][kept[:, column] != -1]
        assert train["positive_rate"][name] == pytest.approx(annotated.mean())
    assert label_names_of(dataset) == AUS
    assert dataset["train"].features["labels"].length == 12


def test_pixels_are_the_files(tree):
    images, annotations, out = tree
    prepare_abaw(images, annotations, out)
    for row in load_from_disk(str(out))["validation"]:
        written = np.asarray(Image.open(images / row["video_id"] / f"{row['frame']:05d}.jpg").convert("RGB"))
        np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), written)


def test_abaw2_au_set_naming_parallel_and_test_list(tmp_path):
    images, annotations = write_tree(tmp_path / "release", parent="AU_Set")
    test_list = tmp_path / "test_videos.txt"
    test_list.write_text(f"{TEST_VIDEO}\r\n\r\n")
    for given in (annotations, annotations.parent):
        out = tmp_path / f"out_{given.name}"
        report = prepare_abaw(images, given, out, num_proc=2, test_list=test_list)
        dataset = load_from_disk(str(out))
        assert rows_of(dataset["train"]) == expected_rows("train")
        assert rows_of(dataset["test"]) == {(TEST_VIDEO, frame): [-1.0] * 12 for frame in TEST_FRAMES}
        assert report["splits"]["test"]["frames"] == len(TEST_FRAMES)


def test_labelled_test_set_folder_gives_a_labelled_test_split(tree):
    images, annotations, out = tree
    rows = [labels_row(41), ALL_MISSING, labels_row(43), labels_row(44)]  # frame 4 has no image
    (annotations / "Test_Set").mkdir()
    (annotations / "Test_Set" / f"{TEST_VIDEO}.txt").write_text(label_text(AUS[::-1], rows, "\n"))
    report = prepare_abaw(images, annotations, out)
    dataset = load_from_disk(str(out))
    assert sorted(dataset) == ["test", "train", "validation"]
    assert rows_of(dataset["test"]) == {(TEST_VIDEO, 1): rows[0], (TEST_VIDEO, 3): rows[2]}
    assert rows_of(dataset["train"]) == expected_rows("train")
    test = report["splits"]["test"]
    assert (test["videos"], test["frames"], test["dropped_unannotated"], test["dropped_missing_image"]) == (1, 2, 1, 1)


def test_test_set_folder_and_test_list_together_are_refused(tree, tmp_path):
    images, annotations, out = tree
    (annotations / "Test_Set").mkdir()
    (annotations / "Test_Set" / f"{TEST_VIDEO}.txt").write_text(label_text(AUS, [labels_row(41)], "\n"))
    test_list = tmp_path / "test_videos.txt"
    test_list.write_text(f"{TEST_VIDEO}\n")
    with pytest.raises(ValueError, match=r"Test_Set holds labelled test videos and the test list .*test_videos\.txt"):
        prepare_abaw(images, annotations, out, test_list=test_list)
    assert_no_output(out)


def test_subsample_keeps_every_kth_frame(tree):
    images, annotations, out = tree
    report = prepare_abaw(images, annotations, out, subsample=2)
    assert rows_of(load_from_disk(str(out))["train"]) == expected_rows("train", subsample=2)
    # frames that pass every other rule but are even: vid1 2, 4, 6; vid2_left 2; vid2_right 4
    assert report["splits"]["train"]["subsampled_out"] == 5


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_bytes().decode().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


MALFORMED = {
    "too few columns": (3, "1,0,1", "expected 12 comma-separated values"),
    "value out of range": (2, "2,0,0,0,0,0,0,0,0,0,0,0", "'2' for AU1 is not one of -1, 0, 1"),
    "not an integer": (4, "1,0,0,0,0,0,0,0,x,0,0,0", "'x' for AU23"),
    "float": (4, "1.0,0,0,0,0,0,0,0,0,0,0,0", "'1.0' for AU1"),
    "blank line inside": (3, "", "found 1"),
    "header mismatch": (1, ",".join(AUS[:-1] + ["AU5"]), "does not match"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_line_names_file_and_line_and_writes_nothing(tree, case):
    images, annotations, out = tree
    line, text, problem = MALFORMED[case]
    label_file = annotations / "Train_Set" / "vid2_right.txt"
    replace_line(label_file, line, text)
    with pytest.raises(DataFormatError) as raised:
        prepare_abaw(images, annotations, out)
    assert f"{label_file}, line {line}:" in str(raised.value) and problem in str(raised.value)
    assert_no_output(out)


def test_error_found_in_a_worker_process_is_the_same(tree):
    images, annotations, out = tree
    label_file = annotations / "Validation_Set" / "vid3.txt"
    replace_line(label_file, 4, "1,0,0,0,0,0,0,0,0,0,0,7")
    with pytest.raises(DataFormatError, match=f"^{label_file}, line 4: value '7' for AU26"):
        prepare_abaw(images, annotations, out, num_proc=2)
    assert_no_output(out)


def test_video_in_two_splits_is_an_error(tree):
    images, annotations, out = tree
    duplicate = annotations / "Validation_Set" / "vid1.txt"
    duplicate.write_text(label_text(AUS, [labels_row(1)], "\n"))
    with pytest.raises(DataFormatError, match=r"vid1\.txt.*'vid1' is also in .*Train_Set/vid1\.txt"):
        prepare_abaw(images, annotations, out)
    assert_no_output(out)


def test_on_error_skip_counts_what_it_skips(tree):
    images, annotations, out = tree
    replace_line(annotations / "Train_Set" / "vid1.txt", 2, "1,0")  # frame 1
    replace_line(annotations / "Train_Set" / "vid1.txt", 5, "1,0,0,0,0,0,0,0,0,0,0,9")  # frame 4
    replace_line(annotations / "Train_Set" / "vid2_left.txt", 1, "AU1,AU2")
    (annotations / "Validation_Set" / "vid2_right.txt").write_text(label_text(AUS, [labels_row(1)], "\n"))
    report = prepare_abaw(images, annotations, out, on_error="skip")
    train = report["splits"]["train"]
    assert train["malformed_lines"] == 2
    assert train["skipped_videos"] == 1
    assert report["splits"]["validation"]["skipped_videos"] == 1
    expected = {key: row for key, row in expected_rows("train").items() if key not in {("vid1", 1), ("vid1", 4)}}
    expected = {key: row for key, row in expected.items() if key[0] != "vid2_left"}
    assert rows_of(load_from_disk(str(out))["train"]) == expected
    assert rows_of(load_from_disk(str(out))["validation"]) == expected_rows("validation")


def test_failure_while_writing_leaves_earlier_output_untouched(tree, monkeypatch):
    images, annotations, out = tree
    prepare_abaw(images, annotations, out, subsample=2)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    calls = []

    def failing_example(*args):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk went away")
        return real_example(*args)

    real_example = abaw.image_row
    monkeypatch.setattr(abaw, "image_row", failing_example)
    with pytest.raises(Exception) as raised:
        prepare_abaw(images, annotations, out)
    assert "disk went away" in repr(raised.value) + repr(raised.value.__cause__)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert json.loads((out / "prepare_report.json").read_text())["subsample"] == 2
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".out")] == []


def test_refuses_to_replace_a_foreign_folder(tree):
    images, annotations, out = tree
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not an earlier converter output"):
        prepare_abaw(images, annotations, out)
    assert (out / "thesis.tex").read_text() == "precious"


def test_missing_annotation_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Train_Set"):
        prepare_abaw(tmp_path, tmp_path / "empty", tmp_path / "out")


def test_cli_converts_then_push_offline_fails_with_local_copy_complete(tree):
    images, annotations, out = tree
    pushed = run_script(
        "prepare_abaw.py",
        "--images_dir",
        images,
        "--annotations_dir",
        annotations,
        "--output_dir",
        out,
        "--num_proc",
        "2",
        "--push_to_hub",
        "someone/au-frames",
        check=False,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert "dropped_missing_image" in pushed.stdout and "positive_rate AU12" in pushed.stdout
    assert pushed.returncode == 1
    assert f"complete at {out}" in pushed.stderr and "someone/au-frames" in pushed.stderr
    dataset = load_from_disk(str(out))
    assert rows_of(dataset["train"]) == expected_rows("train")
    assert rows_of(dataset["validation"]) == expected_rows("validation")


def load_script(name: str):
    """A script as a module, to call its main() in this process (no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reports_malformed_input(tree, capsys):
    images, annotations, out = tree
    replace_line(annotations / "Validation_Set" / "vid3.txt", 3, "1,1")
    code = load_script("prepare_abaw").main(
        ["--images_dir", str(images), "--annotations_dir", str(annotations), "--output_dir", str(out)]
    )
    assert code == 1
    assert "vid3.txt, line 3: expected 12 comma-separated values" in capsys.readouterr().err
    assert_no_output(out)
