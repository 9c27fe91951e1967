"""Synthetic ABAW tree: release layout and quirks, byte-identical reruns, atomic output, regions, CLI."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_script

from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.synthetic import tree as synthetic
from modeling_au_mlt.synthetic.tree import frame_regions, make_synthetic_abaw, region_masks

HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"  # the ABAW AU track header, typed independently
SPLIT_VIDEOS = {"Train_Set": 22, "Validation_Set": 8, "Test_Set": 5}  # the `tree` fixture


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "out"
    summary = make_synthetic_abaw(
        out, train_videos=22, val_videos=8, test_videos=5, frames_per_video=24, seed=3, image_size=64
    )
    return out, summary


def _read_tree(out: Path) -> dict:
    """Counts recomputed from the files alone, as a converter would see them."""
    counts = {}
    for split in SPLIT_VIDEOS:
        c = counts[split] = {
            "videos": 0,
            "frames": 0,
            "dropped_unannotated": 0,
            "dropped_missing_image": 0,
            "unlabelled_images": 0,
            "crlf": 0,
            "trailing_blank": 0,
            "names": [],
        }
        for path in sorted((out / "AU_Detection_Challenge" / split).glob("*.txt")):
            raw = path.read_bytes().decode()
            c["crlf"] += "\r\n" in raw
            lines = raw.replace("\r\n", "\n").split("\n")
            c["trailing_blank"] += raw.endswith(("\n\n", "\r\n\r\n"))
            assert lines[0] == HEADER, path
            rows = [line for line in lines[1:] if line]
            assert all(len(r.split(",")) == 12 and set(r.split(",")) <= {"-1", "0", "1"} for r in rows), path
            images = {p.name for p in (out / "cropped_aligned" / path.stem).glob("*.jpg")}
            c["videos"] += 1
            c["names"].append(path.stem)
            for k, row in enumerate(rows, start=1):
                if set(row.split(",")) == {"-1"}:
                    c["dropped_unannotated"] += 1
                elif f"{k:05d}.jpg" not in images:
                    c["dropped_missing_image"] += 1
                else:
                    c["frames"] += 1
            c["unlabelled_images"] += len(images - {f"{k:05d}.jpg" for k in range(1, len(rows) + 1)})
    return counts


def test_tree_has_the_release_layout_and_quirks(tree):
    out, summary = tree
    counts = _read_tree(out)
    assert sorted(p.name for p in (out / "AU_Detection_Challenge").iterdir()) == sorted(SPLIT_VIDEOS)
    for split, videos in SPLIT_VIDEOS.items():
        c, s = counts[split], summary["splits"][split]
        assert c["videos"] == s["videos"] == videos
        for key in ("frames", "dropped_unannotated", "dropped_missing_image", "unlabelled_images"):
            assert c[key] == s[key], (split, key)
    every = [name for split in SPLIT_VIDEOS for name in counts[split]["names"]]
    assert len(set(every)) == len(every)  # no video in two splits
    lefts = [(s, n) for s in counts for n in counts[s]["names"] if n.endswith("_left")]
    assert lefts and all(n.replace("_left", "_right") in counts[s]["names"] for s, n in lefts)
    total = {key: sum(counts[s][key] for s in counts) for key in counts["Train_Set"] if key != "names"}
    for quirk in ("dropped_unannotated", "dropped_missing_image", "unlabelled_images", "crlf", "trailing_blank"):
        assert total[quirk] > 0, f"seed 3 should exercise the quirk {quirk}"
    frame = cv2.imread(str(next((out / "cropped_aligned").glob("*/00001.jpg"))))
    assert frame.shape == (64, 64, 3)


def test_summary_rates_are_recomputed_from_files(tree):
    out, summary = tree
    kept = []
    for path in sorted((out / "AU_Detection_Challenge" / "Train_Set").glob("*.txt")):
        labels = np.loadtxt(path, delimiter=",", skiprows=1, dtype=int, ndmin=2)
        has_image = [
            (out / "cropped_aligned" / path.stem / f"{k:05d}.jpg").exists() for k in range(1, len(labels) + 1)
        ]
        kept.append(labels[has_image])
    rows = np.concatenate(kept)
    rows = rows[(rows != -1).any(axis=1)]
    for k, au in enumerate(ABAW_AUS):
        annotated = rows[:, k] != -1
        assert summary["splits"]["Train_Set"]["positive_rate"][au] == pytest.approx((rows[annotated, k] == 1).mean())


def _files(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "synthetic_summary.json"
    }  # the summary records timings and the output path


def test_same_seed_gives_identical_bytes_also_in_parallel(tmp_path):
    args = dict(train_videos=3, val_videos=2, frames_per_video=6, image_size=48)
    make_synthetic_abaw(tmp_path / "a", seed=8, **args)
    make_synthetic_abaw(tmp_path / "b", seed=8, num_proc=2, **args)
    make_synthetic_abaw(tmp_path / "c", seed=9, **args)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) > 25 and a == b
    assert a != c


def test_regions_json_covers_every_image(tree):
    out, _ = tree
    regions = json.loads((out / "regions.json").read_text())
    assert regions["aus"] == HEADER.split(",") and regions["image_size"] == 64
    images = {(p.parent.name, int(p.stem)) for p in (out / "cropped_aligned").glob("*/*.jpg")}
    assert images == {(v, int(f)) for v, e in regions["videos"].items() for f in e["affines"]}
    video, frame = sorted(images)[0]
    masks = region_masks(regions, video, frame)
    assert masks.shape == (12, 64, 64) and all(0 < m.mean() < 0.35 for m in masks)
    # Brows above eyes above mouth, in the saved frame.
    rows = {name: np.nonzero(m)[0].mean() for name, m in zip(regions["aus"], masks)}
    assert rows["AU1"] < rows["AU7"] < rows["AU12"] < rows["AU26"]


def test_every_video_has_its_own_identity_so_test_identities_are_new(tree):
    out, _ = tree
    videos = json.loads((out / "regions.json").read_text())["videos"]
    splits = {split: [v for v, entry in videos.items() if entry["split"] == split] for split in SPLIT_VIDEOS}
    assert {split: len(names) for split, names in splits.items()} == SPLIT_VIDEOS
    # Where each AU acts follows the face's geometry alone: one region set per identity (pairs included).
    fingerprints = {
        split: {json.dumps(videos[v]["regions"], sort_keys=True) for v in names} for split, names in splits.items()
    }
    assert sum(map(len, fingerprints.values())) == len(videos)
    assert not fingerprints["Test_Set"] & (fingerprints["Train_Set"] | fingerprints["Validation_Set"])


def test_frame_regions_apply_the_affine_by_hand():
    doc = {
        "videos": {
            "v": {
                "regions": {"AU1": [[[0, 0], [10, 0], [10, 10], [0, 10]]]},
                "affines": {"3": [[0.0, -1.0, 20.0], [1.0, 0.0, 5.0]]},
            }
        }
    }
    polygon = frame_regions(doc, "v", 3)["AU1"][0]
    assert polygon.tolist() == [[20, 5], [20, 15], [10, 15], [10, 5]]


def test_existing_output_is_refused_and_failures_leave_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="out"):
        make_synthetic_abaw(out, train_videos=1, val_videos=1, frames_per_video=2, seed=0)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    def broken(task):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_video", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        make_synthetic_abaw(tmp_path / "new", train_videos=1, val_videos=1, frames_per_video=2, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="frames_per_video"):
        make_synthetic_abaw(tmp_path / "o", train_videos=1, val_videos=1, frames_per_video=0, seed=0)


def test_cli_writes_tree_and_preview(tmp_path):
    out, preview = tmp_path / "cli", tmp_path / "preview.png"
    completed = run_script(
        "make_synthetic_abaw.py",
        "--output_dir",
        out,
        "--train_videos",
        2,
        "--val_videos",
        1,
        "--test_videos",
        2,
        "--frames_per_video",
        5,
        "--seed",
        4,
        "--image_size",
        64,
        "--preview",
        preview,
    )
    summary = json.loads(completed.stdout)
    assert summary["splits"]["Validation_Set"]["videos"] == 1
    assert len(list((out / "AU_Detection_Challenge" / "Train_Set").glob("*.txt"))) == 2
    assert len(list((out / "AU_Detection_Challenge" / "Test_Set").glob("*.txt"))) == 2
    image = cv2.imread(str(preview))
    assert image is not None and image.shape[1] > 1000


def test_tree_converts_cleanly_with_prepare_abaw(tree, tmp_path):
    abaw = pytest.importorskip("modeling_au_mlt.data.abaw", reason="the ABAW converter has not landed yet")
    datasets = pytest.importorskip("datasets")
    out, summary = tree
    report = abaw.prepare_abaw(out / "cropped_aligned", out / "AU_Detection_Challenge", tmp_path / "ds")["splits"]
    converted = datasets.load_from_disk(str(tmp_path / "ds"))
    assert sorted(converted) == ["test", "train", "validation"]
    for split, name in (("train", "Train_Set"), ("validation", "Validation_Set"), ("test", "Test_Set")):
        for key in ("videos", "frames", "dropped_unannotated", "dropped_missing_image", "unlabelled_images"):
            assert report[split][key] == summary["splits"][name][key], (split, key)
        assert report[split]["malformed_lines"] == 0 and len(converted[split]) == summary["splits"][name]["frames"]
        for au, rate in summary["splits"][name]["positive_rate"].items():
            assert report[split]["positive_rate"][au] == pytest.approx(rate)
    row = converted["train"][0]
    label_file = out / "AU_Detection_Challenge" / "Train_Set" / f"{row['video_id']}.txt"
    line = label_file.read_text().splitlines()[row["frame"]]
    assert row["labels"] == [float(v) for v in line.split(",")]


def test_empty_split_still_has_its_folder(tmp_path):
    summary = make_synthetic_abaw(tmp_path / "o", train_videos=1, val_videos=0, frames_per_video=3, seed=1)
    assert (tmp_path / "o" / "AU_Detection_Challenge" / "Validation_Set").is_dir()
    assert summary["splits"]["Validation_Set"]["videos"] == 0
    assert not (tmp_path / "o" / "AU_Detection_Challenge" / "Test_Set").exists()  # test_videos=0: no test split
    assert sorted(summary["splits"]) == ["Train_Set", "Validation_Set"]
