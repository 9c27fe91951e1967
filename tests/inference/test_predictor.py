"""End-to-end prediction on real photos and a test-written video: CSV layout, boxes, probabilities
checked against a second code path (model run directly on the crop), thresholds, smoothing, no-face rows."""

import csv

import numpy as np
import pytest
import torch
from inference_helpers import (
    ASTRONAUT_FACE,
    GRACE_HOPPER_FACE,
    TINY_THRESHOLDS,
    astronaut_rgb,
    grace_hopper_rgb,
    save_rgb,
)
from PIL import Image
from transformers import AutoImageProcessor

from modeling_au_mlt import ABAW_AUS, AUMLTModel
from modeling_au_mlt.inference.faces import FaceBox, crop_face
from modeling_au_mlt.inference.predictor import AUPredictor, Prediction, csv_header

COLUMNS = ["frame", "timestamp", "face_id", "x", "y", "w", "h", "face_detected"] + [
    column for au in ABAW_AUS for column in (f"{au}_prob", au)
]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return AUPredictor(tiny_model_dir, device="cpu")


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def run(predictor, inputs, output_dir, **options):
    options = {"progress": False, "num_workers": 0, "batch_size": 8, **options}
    return Prediction(predictor, output_dir, **options).run(inputs)


def decoded_rgb(path):
    """The RGB pixels of an image file as a decoder reads them back."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def probabilities_of(row):
    return np.array([float(row[f"{au}_prob"]) for au in ABAW_AUS])


def test_header_is_exactly_the_documented_columns():
    assert csv_header(list(ABAW_AUS)) == COLUMNS


def test_photos_give_one_plausible_face_with_probabilities_from_the_model(predictor, tiny_model_dir, tmp_path):
    grace = save_rgb(tmp_path / "grace.jpg", grace_hopper_rgb())
    astronaut = save_rgb(tmp_path / "astronaut.png", astronaut_rgb())
    assert run(predictor, [grace, astronaut], tmp_path / "out") == 0
    model = AUMLTModel.from_pretrained(tiny_model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_model_dir)
    # The images as written (grace.jpg is lossy): the predictor sees the decoded files, so must the second path.
    photos = [("grace", decoded_rgb(grace), GRACE_HOPPER_FACE), ("astronaut", decoded_rgb(astronaut), ASTRONAUT_FACE)]
    for stem, image, truth in photos:
        header, rows = read_csv(tmp_path / "out" / f"{stem}.csv")
        assert header == COLUMNS
        (row,) = rows
        assert (row["frame"], row["timestamp"], row["face_id"], row["face_detected"]) == ("0", "", "0", "1")
        box = FaceBox(*(int(row[k]) for k in "xywh"))
        assert abs(box.x + box.w / 2 - truth["centre"][0]) < 50 and abs(box.y + box.h / 2 - truth["centre"][1]) < 50
        probabilities = probabilities_of(row)
        assert ((probabilities >= 0) & (probabilities <= 1)).all()
        # Second code path: crop the reported box by hand and run the model directly.
        pixels = processor(images=[crop_face(image, box, 32)], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = torch.sigmoid(model(pixels).logits)[0].numpy()
        np.testing.assert_allclose(probabilities, expected, atol=1e-4)
        decisions = [int(row[au]) for au in ABAW_AUS]
        assert decisions == [int(p >= t) for p, t in zip(probabilities, TINY_THRESHOLDS)] == [1, 0] * 6


def test_image_without_a_face_gives_one_flagged_row(predictor, tmp_path):
    blank = save_rgb(tmp_path / "wall.png", np.full((200, 300, 3), 180, np.uint8))
    assert run(predictor, [blank], tmp_path / "out") == 0
    _, rows = read_csv(tmp_path / "out" / "wall.csv")
    assert len(rows) == 1 and rows[0]["face_detected"] == "0"
    assert all(rows[0][c] == "" for c in COLUMNS[2:7] + COLUMNS[8:])


def test_no_detect_takes_the_whole_image_as_the_face(predictor, tmp_path):
    wall = save_rgb(tmp_path / "wall.png", np.full((200, 300, 3), 180, np.uint8))
    assert run(predictor, [wall], tmp_path / "out", detect=False) == 0
    _, (row,) = read_csv(tmp_path / "out" / "wall.csv")
    assert [row[k] for k in ("face_id", "x", "y", "w", "h", "face_detected")] == ["0", "0", "0", "300", "200", "1"]


@pytest.fixture(scope="module")
def video_rows(predictor, face_video, tmp_path_factory):
    """CSV rows of the test video without smoothing (with the worker process) and with a 5-frame window."""
    out = tmp_path_factory.mktemp("video_out")
    assert run(predictor, [face_video], out / "raw", smooth=1, num_workers=1) == 0
    assert run(predictor, [face_video], out / "smooth", smooth=5) == 0
    return read_csv(out / "raw" / "clip.csv")[1], read_csv(out / "smooth" / "clip.csv")[1]


def test_video_one_row_per_frame_blank_frames_flagged_ids_stable(video_rows):
    rows, _ = video_rows
    assert [int(r["frame"]) for r in rows] == list(range(20))
    timestamps = [float(r["timestamp"]) for r in rows]
    assert np.all(np.diff(timestamps) > 0) and timestamps[1] == pytest.approx(0.04)
    detected = [r["face_detected"] for r in rows]
    assert detected == ["1"] * 8 + ["0"] * 4 + ["1"] * 8
    assert {r["face_id"] for r in rows if r["face_detected"] == "1"} == {"0"}
    xs = [int(r["x"]) for r in rows if r["face_detected"] == "1"]
    assert np.polyfit(range(len(xs)), xs, 1)[0] > 0  # the face drifts right


def test_video_smoothing_is_a_centred_mean_per_face(video_rows):
    raw, smooth = video_rows
    face_rows = [i for i, r in enumerate(raw) if r["face_detected"] == "1"]
    raw_probs = np.array([probabilities_of(raw[i]) for i in face_rows])
    for position, i in enumerate(face_rows):
        window = raw_probs[max(0, position - 2) : position + 3]  # this face's rows, gap skipped
        np.testing.assert_allclose(probabilities_of(smooth[i]), window.mean(axis=0), atol=2e-4)
    assert smooth[10]["face_detected"] == "0" and smooth[10]["AU1_prob"] == ""


def test_bad_inputs_are_counted_and_the_rest_processed(predictor, tmp_path, caplog):
    good = save_rgb(tmp_path / "good.png", astronaut_rgb())
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 500)
    folder = tmp_path / "frames"
    folder.mkdir()
    save_rgb(folder / "00001.png", astronaut_rgb())
    (folder / "00002.png").write_bytes(b"broken")
    with caplog.at_level("INFO", logger="modeling_au_mlt.inference.predictor"):
        failures = run(
            predictor, [tmp_path / "bad.mp4", good, folder, tmp_path / "other" / "good.png"], tmp_path / "out"
        )
    assert failures == 3  # the corrupt video, the broken frame, the missing file
    errors = "\n".join(record.getMessage() for record in caplog.records if record.levelname == "ERROR")
    assert str(tmp_path / "bad.mp4") in errors and str(folder / "00002.png") in errors
    assert read_csv(tmp_path / "out" / "good.csv")[1][0]["face_detected"] == "1"
    assert [r["frame"] for r in read_csv(tmp_path / "out" / "frames.csv")[1]] == ["0"]
    assert not (tmp_path / "out" / "bad.csv").exists()
    assert "3 failure(s)" in caplog.text
