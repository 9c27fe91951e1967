"""The demo as users reach it: `demo/app.py` started as a server, called through `gradio_client` and driven in
headless Chromium. What it shows is checked against the model's own probabilities, computed here directly."""

import configparser
import csv

import gradio
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT
from gradio_client import Client, handle_file
from inference_helpers import grace_hopper_rgb, model_probabilities, save_rgb
from PIL import Image

from demo.browser import (
    chromium,
    click_example,
    full_page_screenshot,
    open_app,
    running_app,
    shown_probabilities,
    upload_photo,
    wait_for_message,
)
from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.inference.faces import FaceDetector
from modeling_au_mlt.inference.media import open_media
from modeling_au_mlt.inference.photo import NO_FACE_MESSAGE, example_images, no_face, synthetic_face
from modeling_au_mlt.inference.predictor import csv_header

NO_FACE_HEADLINE = "No face found in this photo."


@pytest.fixture(scope="module")
def app_url(spread_model_dir):
    """One demo server for the module, on a tiny model whose scores differ between photos."""
    with running_app(spread_model_dir) as url:
        yield url


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Grace Hopper's portrait and a picture without a face, as PNG files (lossless: the server decodes the
    same pixels as the test)."""
    folder = tmp_path_factory.mktemp("photos")
    return {
        "face": save_rgb(folder / "grace_hopper.png", grace_hopper_rgb()),
        "no_face": save_rgb(folder / "no_face.png", no_face()),
    }


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_predict_image_returns_the_models_probabilities_for_the_face(client, photos, spread_model_dir):
    _, expected = model_probabilities(spread_model_dir, grace_hopper_rgb())
    label, boxed, table, overlays, message = client.predict(handle_file(photos["face"]), 0, api_name="/predict_image")
    confidences = {entry["label"]: entry["confidence"] for entry in label["confidences"]}
    assert set(confidences) == set(ABAW_AUS)
    np.testing.assert_allclose([confidences[name] for name in ABAW_AUS], expected[0], atol=1e-4)
    assert label["label"] == ABAW_AUS[int(np.argmax(expected[0]))]
    assert [row[0] for row in table["data"]] == list(ABAW_AUS)
    assert len(overlays) == len(ABAW_AUS) and overlays[0]["caption"].startswith("AU1 ")
    assert Image.open(boxed).size == (512, 600)
    assert "1 face found" in message


def test_predict_image_without_a_face_gives_the_message(client, photos):
    label, _, table, overlays, message = client.predict(handle_file(photos["no_face"]), 0, api_name="/predict_image")
    assert message == NO_FACE_MESSAGE
    assert not label and not table["data"] and not overlays


def test_predict_video_returns_the_clis_csv_and_a_timeline(client, face_video, spread_model_dir):
    table, timeline, message = client.predict(handle_file(str(face_video)), api_name="/predict_video")
    with open(table, newline="") as handle:
        rows = list(csv.reader(handle))
    detector = FaceDetector()
    faces_per_frame = [len(detector.detect(frame.image)) for frame in open_media(face_video)]
    assert rows[0] == csv_header(ABAW_AUS)
    assert len(rows) - 1 == sum(max(1, faces) for faces in faces_per_frame)
    without_face = [int(row[0]) for row in rows[1:] if row[rows[0].index("face_detected")] == "0"]
    assert without_face == [frame for frame, faces in enumerate(faces_per_frame) if faces == 0]
    assert without_face == [8, 9, 10, 11]
    with Image.open(timeline) as figure:
        assert figure.format == "PNG" and min(figure.size) > 100
    assert "20 frames" in message


def test_the_page_shows_the_models_probabilities_the_no_face_message_and_runs_examples(
    app_url, photos, spread_model_dir, tmp_path
):
    _, expected = model_probabilities(spread_model_dir, grace_hopper_rgb())
    _, expected_synthetic = model_probabilities(spread_model_dir, synthetic_face())
    assert np.abs(expected - expected_synthetic).max() > 0.05  # the page must show the example's own scores
    with chromium() as driver:
        open_app(driver, app_url)
        upload_photo(driver, photos["face"])
        shown = shown_probabilities(driver, len(ABAW_AUS))
        assert set(shown) == set(ABAW_AUS)
        # The label shows whole percentages.
        np.testing.assert_allclose([shown[name] for name in ABAW_AUS], expected[0], atol=0.005 + 1e-6)
        screenshot = full_page_screenshot(driver, tmp_path / "demo.png")
        upload_photo(driver, photos["no_face"])
        assert NO_FACE_HEADLINE in wait_for_message(driver, NO_FACE_HEADLINE)
        click_example(driver, list(example_images()).index("synthetic_face"))
        shown = shown_probabilities(driver, len(ABAW_AUS))
        np.testing.assert_allclose([shown[name] for name in ABAW_AUS], expected_synthetic[0], atol=0.005 + 1e-6)
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size[0] >= 1000 and image.size[1] > 1000


def test_the_space_card_and_requirements_match_the_app_and_the_package():
    card = (REPO_ROOT / "demo" / "README.md").read_text(encoding="utf-8")
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert front_matter["sdk"] == "gradio" and (REPO_ROOT / "demo" / front_matter["app_file"]).is_file()
    assert front_matter["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
    requirements = (REPO_ROOT / "demo" / "requirements.txt").read_text().splitlines()
    extras = configparser.ConfigParser()
    extras.read(REPO_ROOT / "setup.cfg")
    assert extras["options.extras_require"]["demo"].split() == [
        line for line in requirements if line.startswith("gradio")
    ]
    assert any(line.startswith("au-mlt @ ") for line in requirements)
