"""Prediction with a temporal model: a video's tracked face scored with context from its other frames (checked
against the model run directly on the same crops), causal scoring, photos as single frames, attention figures."""

import csv

import cv2
import numpy as np
import pytest
import torch
from inference_helpers import grace_hopper_rgb, save_rgb
from PIL import Image
from transformers import AutoImageProcessor

from benchmarks.bench_video import synthetic_face_frames, write_video
from modeling_au_mlt import ABAW_AUS, AUMLTModel
from modeling_au_mlt.inference import predictor as predictor_module
from modeling_au_mlt.inference.faces import FaceBox, crop_face
from modeling_au_mlt.inference.predictor import AUPredictor, Prediction, csv_header

DESCRIPTION = ["frame", "timestamp", "face_id", "x", "y", "w", "h", "face_detected"]


@pytest.fixture(scope="module")
def temporal(tiny_temporal_model_dir):
    """The predictor, and the model and image processor for the second code path."""
    model = AUMLTModel.from_pretrained(tiny_temporal_model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_temporal_model_dir)
    return AUPredictor(tiny_temporal_model_dir, device="cpu"), model, processor


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == csv_header(list(ABAW_AUS))
        return list(reader)


def run(predictor, inputs, output_dir, **options):
    options = {"progress": False, "num_workers": 0, "batch_size": 8, "smooth": 1, **options}
    return Prediction(predictor, output_dir, **options).run(inputs)


def probabilities_of(rows):
    return np.array([[float(row[f"{au}_prob"]) for au in ABAW_AUS] for row in rows])


def face_rows(rows):
    return [row for row in rows if row["face_detected"] == "1"]


def track_probabilities(model, processor, video, rows, causal=None, gaps=True):
    """Second code path: the reported boxes cropped from the video as OpenCV decodes it, `frame_states` of
    the crops, and `video_logits` over the track's span (missed frames masked, or left out with `gaps=False`)."""
    capture = cv2.VideoCapture(str(video))
    images = []
    while (decoded := capture.read())[0]:
        images.append(cv2.cvtColor(decoded[1], cv2.COLOR_BGR2RGB))
    capture.release()
    rows = face_rows(rows)
    crops = [crop_face(images[int(row["frame"])], FaceBox(*(int(row[k]) for k in "xywh")), 32) for row in rows]
    pixels = processor(images=crops, return_tensors="pt")["pixel_values"]
    frames = np.array([int(row["frame"]) for row in rows])
    positions = frames - frames[0] if gaps else np.arange(len(frames))
    with torch.no_grad():
        states = model.frame_states(pixels)
        span = torch.zeros(positions[-1] + 1, *states.shape[1:])
        span[positions] = states
        mask = torch.zeros(len(span), dtype=torch.bool)
        mask[positions] = True
        logits = model.video_logits(span, mask, causal=causal)[positions]
        alone = model(pixels).logits  # each frame scored as a one-frame clip
    return torch.sigmoid(logits).numpy(), torch.sigmoid(alone).numpy()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return save_rgb(tmp_path_factory.mktemp("photo") / "grace.jpg", grace_hopper_rgb())


@pytest.fixture(scope="module")
def temporal_rows(temporal, photo, face_video, tmp_path_factory):
    """CSV rows of a photo and the test video scored together (their faces share model batches)."""
    out = tmp_path_factory.mktemp("temporal_out")
    assert run(temporal[0], [photo, face_video], out) == 0
    return read_rows(out / "grace.csv"), read_rows(out / "clip.csv")


def test_video_gives_the_frame_models_rows_one_per_frame_and_face(temporal_rows, tiny_model_dir, face_video, tmp_path):
    _, rows = temporal_rows
    assert run(AUPredictor(tiny_model_dir, device="cpu"), [face_video], tmp_path) == 0
    frame_rows = read_rows(tmp_path / "clip.csv")
    assert [[row[k] for k in DESCRIPTION] for row in rows] == [[row[k] for k in DESCRIPTION] for row in frame_rows]
    assert [row["face_detected"] for row in rows] == ["1"] * 8 + ["0"] * 4 + ["1"] * 8
    assert all(row["AU1_prob"] == "" for row in rows[8:12])


def test_video_probabilities_are_the_tracks_video_logits_and_use_context(temporal, temporal_rows, face_video):
    _, model, processor = temporal
    _, rows = temporal_rows
    expected, alone = track_probabilities(model, processor, face_video, rows)
    probabilities = probabilities_of(face_rows(rows))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert np.abs(probabilities - alone).max() > 1e-2  # other frames changed the scores
    # The four missed frames are masked positions: joining frames 7 and 12 as neighbours scores differently.
    joined, _ = track_probabilities(model, processor, face_video, rows, gaps=False)
    assert np.abs(probabilities - joined).max() > 1e-3


def test_photo_is_a_single_frame(temporal, temporal_rows, photo):
    _, model, processor = temporal
    (row,) = temporal_rows[0]
    crop = crop_face(np.asarray(Image.open(photo).convert("RGB")), FaceBox(*(int(row[k]) for k in "xywh")), 32)
    with torch.no_grad():
        expected = torch.sigmoid(model(processor(images=[crop], return_tensors="pt")["pixel_values"]).logits)
    np.testing.assert_allclose(probabilities_of([row])[0], expected[0].numpy(), atol=1e-4)


def test_video_without_a_face_gives_one_flagged_row_per_frame(temporal, tmp_path):
    video = write_video(tmp_path / "empty.avi", synthetic_face_frames(5, blank=range(5)))
    assert run(temporal[0], [video], tmp_path / "out") == 0
    rows = read_rows(tmp_path / "out" / "empty.csv")
    assert [(row["frame"], row["face_detected"], row["AU1_prob"]) for row in rows] == [
        (str(i), "0", "") for i in range(5)
    ]


def test_causal_scores_ignore_later_frames(temporal, face_video, tmp_path, caplog):
    predictor, model, processor = temporal
    frames = synthetic_face_frames(20, blank=range(8, 12))
    brighter = frames[:16] + [np.clip(frame.astype(int) + 40, 0, 255).astype(np.uint8) for frame in frames[16:]]
    changed = write_video(tmp_path / "changed.avi", brighter)
    with caplog.at_level("WARNING", logger="modeling_au_mlt.inference.predictor"):
        assert run(predictor, [face_video, changed], tmp_path / "causal", causal=True) == 0
    assert "trained with two-sided temporal context" in caplog.text
    assert run(predictor, [face_video, changed], tmp_path / "both") == 0
    causal = {stem: read_rows(tmp_path / "causal" / f"{stem}.csv") for stem in ("clip", "changed")}
    both = {stem: read_rows(tmp_path / "both" / f"{stem}.csv") for stem in ("clip", "changed")}
    expected, _ = track_probabilities(model, processor, face_video, causal["clip"], causal=True)
    np.testing.assert_allclose(probabilities_of(face_rows(causal["clip"])), expected, atol=1e-4)
    # The same track either way (brighter frames 16-19 keep the face): the first 12 faces are frames 0-15.
    assert probabilities_of(face_rows(causal["clip"])[:12]).tolist() == (
        probabilities_of(face_rows(causal["changed"])[:12]).tolist()
    )
    assert not np.allclose(
        probabilities_of(face_rows(both["clip"])[:12]), probabilities_of(face_rows(both["changed"])[:12])
    )


def test_attention_figures_of_a_video_are_titled_with_the_track_scores(temporal, face_video, tmp_path, monkeypatch):
    titled = []

    def recording_figure(crops, maps, probabilities, *args, **kwargs):
        titled.append(probabilities)
        assert maps.shape == (len(crops), len(ABAW_AUS), 4, 4)
        return figure(crops, maps, probabilities, *args, **kwargs)

    figure = predictor_module.attention_figure
    monkeypatch.setattr(predictor_module, "attention_figure", recording_figure)
    assert run(temporal[0], [face_video], tmp_path, attention_maps=True, attention_every=5) == 0
    written = sorted(path.name for path in tmp_path.glob("clip_attention_*.png"))
    assert written == ["clip_attention_000000.png", "clip_attention_000005.png", "clip_attention_000015.png"]
    rows = read_rows(tmp_path / "clip.csv")
    np.testing.assert_allclose(np.concatenate(titled), probabilities_of([rows[0], rows[5], rows[15]]), atol=1e-4)
