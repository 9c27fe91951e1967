"""The demo's photo analysis (`inference/photo.py`) against independent truth: boxes from the face detector,
probabilities from a direct forward of the saved model on the crop, decisions from the saved thresholds."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from inference_helpers import TINY_THRESHOLDS, grace_hopper_rgb, model_probabilities

from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.inference.faces import FaceDetector
from modeling_au_mlt.inference.media import read_image
from modeling_au_mlt.inference.photo import (
    CHOSEN_COLOUR,
    NO_FACE_MESSAGE,
    NO_PHOTO_MESSAGE,
    OVERLAY_SIZE,
    PhotoAnalyser,
    attention_overlay,
    example_images,
    no_face,
    video_outputs,
)
from modeling_au_mlt.inference.predictor import AUPredictor

CAPTION = re.compile(r"^(AU\d+) (\d\.\d\d) \(threshold (\d\.\d\d)\) (present|absent)$")


@pytest.fixture(scope="module")
def analyser(spread_model_dir) -> PhotoAnalyser:
    return PhotoAnalyser(AUPredictor(spread_model_dir, device="cpu"))


def two_faces() -> np.ndarray:
    """Grace Hopper's portrait, and beside it a half-size copy: two faces of different sizes."""
    photo = grace_hopper_rgb()
    canvas = np.full((600, 900, 3), 90, np.uint8)
    canvas[:, :512] = photo
    canvas[100:400, 600:856] = cv2.resize(photo, (256, 300), interpolation=cv2.INTER_AREA)
    return canvas


def test_every_face_is_found_largest_first_and_scored_as_the_model_scores_its_crop(analyser, spread_model_dir):
    image = two_faces()
    boxes, expected = model_probabilities(spread_model_dir, image)
    analysis = analyser.analyse(image)
    assert len(boxes) == 2 and boxes[0].area > boxes[1].area
    assert np.abs(expected[0] - expected[1]).max() > 0.01  # so a swap of the faces would show
    assert analysis.boxes == boxes
    np.testing.assert_allclose(analysis.probabilities, expected, atol=1e-4)
    assert analysis.maps.shape == (2, len(ABAW_AUS), 4, 4)
    assert analysis.crops.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("face", [0, 1])
def test_outputs_of_the_chosen_face(analyser, spread_model_dir, face):
    image = two_faces()
    _, expected = model_probabilities(spread_model_dir, image)
    shown = analyser.outputs(image, face)
    assert list(shown.confidences) == list(ABAW_AUS)
    np.testing.assert_allclose(list(shown.confidences.values()), expected[face], atol=1e-4)
    assert [row[0] for row in shown.table] == list(ABAW_AUS)
    assert [row[2] for row in shown.table] == TINY_THRESHOLDS
    assert [row[3] for row in shown.table] == list(expected[face] >= np.array(TINY_THRESHOLDS))
    assert f"2 faces found (numbered largest first); showing face {face}" in shown.message
    for (overlay, caption), name, p, threshold in zip(shown.overlays, ABAW_AUS, expected[face], TINY_THRESHOLDS):
        assert overlay.shape == (OVERLAY_SIZE, OVERLAY_SIZE, 3) and overlay.dtype == np.uint8
        assert CAPTION.match(caption).groups() == (
            name,
            f"{p:.2f}",
            f"{threshold:.2f}",
            "present" if p >= threshold else "absent",
        )


def test_the_chosen_face_box_is_drawn_in_its_colour_and_the_rest_of_the_photo_is_kept(analyser):
    image = two_faces()
    shown = analyser.outputs(image, 1)
    chosen, other = FaceDetector().detect(image)[1], FaceDetector().detect(image)[0]
    assert tuple(shown.boxed[chosen.y + chosen.h // 2, chosen.x]) == CHOSEN_COLOUR  # left edge of face 1's box
    assert tuple(shown.boxed[other.y + other.h // 2, other.x]) != CHOSEN_COLOUR
    inside = np.s_[chosen.y + 10 : chosen.y + chosen.h - 10, chosen.x + 10 : chosen.x + chosen.w - 10]
    np.testing.assert_array_equal(shown.boxed[inside], image[inside])
    np.testing.assert_array_equal(shown.boxed[550:, 860:], image[550:, 860:])  # far from any box


def test_a_photo_without_a_face_gets_the_message_and_nothing_else(analyser):
    image = no_face()
    assert FaceDetector().detect(image) == []
    shown = analyser.outputs(image, 0)
    assert shown.message == NO_FACE_MESSAGE
    assert shown.confidences is None and shown.table is None and shown.overlays is None
    np.testing.assert_array_equal(shown.boxed, image)


@pytest.mark.parametrize("face", [2, -1, 0.5])
def test_a_face_number_that_is_not_one_of_the_faces_is_explained(analyser, face):
    shown = analyser.outputs(two_faces(), face)
    assert shown.confidences is None
    assert f"Face {face} was asked for; this photo has 2 face(s)" in shown.message
    assert "0 to 1" in shown.message


def test_missing_or_malformed_input_is_explained(analyser, spread_model_dir):
    assert analyser.outputs(None, 0).message == NO_PHOTO_MESSAGE
    with pytest.raises(ValueError, match=r"expected an RGB uint8 image \(H, W, 3\); got uint8 \(20, 20\)"):
        analyser.analyse(np.zeros((20, 20), np.uint8))
    assert video_outputs(analyser.predictor, None) == (None, None, "Upload a video first.")


def test_an_overlay_is_hottest_where_the_attention_is():
    crop = np.full((32, 32, 3), 128, np.uint8)
    attention = np.zeros((4, 4))
    attention[1, 3] = 1.0  # row 1, column 3 of the patch grid
    overlay = attention_overlay(crop, attention).astype(int)
    redness = overlay[..., 0] - overlay[..., 2]
    row, column = np.unravel_index(np.argmax(redness), redness.shape)
    cell = OVERLAY_SIZE / 4
    assert 1 <= row / cell < 2 and 3 <= column / cell < 4
    assert overlay.min() >= 0 and overlay.max() <= 255


def test_examples_are_written_once_and_are_what_they_claim(tmp_path):
    examples = example_images(tmp_path)
    assert {"grace_hopper", "synthetic_face", "no_face", "astronaut"} <= set(examples)
    written = {name: path.stat().st_mtime_ns for name, path in examples.items()}
    assert example_images(tmp_path) == examples
    assert {name: path.stat().st_mtime_ns for name, path in examples.items()} == written
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(path.name for path in examples.values())
    detector = FaceDetector()
    faces = {name: len(detector.detect(read_image(path))) for name, path in examples.items()}
    assert faces == {"grace_hopper": 1, "synthetic_face": 1, "no_face": 0, "astronaut": 1}
    np.testing.assert_array_equal(read_image(examples["grace_hopper"]), grace_hopper_rgb())


def test_a_chosen_subset_of_examples_is_written_and_an_unknown_name_refused(tmp_path):
    chosen = example_images(tmp_path / "subset", names=["synthetic_face.png"])
    assert list(chosen) == ["synthetic_face"] and [path.name for path in (tmp_path / "subset").iterdir()] == [
        "synthetic_face.png"
    ]
    with pytest.raises(ValueError, match=r"unknown example images \['face.jpg'\]"):
        example_images(tmp_path / "other", names=["face.jpg", "no_face.png"])
    assert not (tmp_path / "other").exists()


def test_a_video_gives_its_csv_and_timeline_and_nothing_else(analyser, face_video):
    table, timeline, message = video_outputs(analyser.predictor, face_video)
    assert sorted(path.name for path in Path(table).parent.iterdir()) == ["clip.csv", "clip_timeline.png"]
    assert Path(timeline).parent == Path(table).parent and "20 frames" in message


def test_a_video_that_cannot_be_read_is_explained(analyser, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    table, timeline, message = video_outputs(analyser.predictor, broken)
    assert table is None and timeline is None
    assert message.startswith("**Not every frame could be processed:**") and "broken.mp4" in message
    assert "0 frames" in message
