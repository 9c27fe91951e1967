"""The Inference Endpoints handler, loaded from a Hub-ready folder as the endpoint does, on PIL images,
bytes and base64 strings; scores checked against the model run directly. A temporal model scores a list as
the frames of one face track."""

import ast
import base64
import importlib.util
import io
import sys

import numpy as np
import pytest
import torch
from inference_helpers import TINY_THRESHOLDS, grace_hopper_rgb
from PIL import Image
from transformers import AutoImageProcessor

from modeling_au_mlt import ABAW_AUS, AUMLTModel

ALLOWED_IMPORTS = {"base64", "binascii", "io", "typing", "torch", "PIL", "transformers"}


def endpoint_handler(folder):
    """`EndpointHandler` from the folder's own handler.py, with this package made unimportable while it lives."""
    saved = sys.modules.get("modeling_au_mlt")
    sys.modules["modeling_au_mlt"] = None  # any import of the package inside the handler now fails
    try:
        spec = importlib.util.spec_from_file_location("endpoint_handler", folder / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module.EndpointHandler(str(folder))
    finally:
        sys.modules["modeling_au_mlt"] = saved


@pytest.fixture(scope="module")
def handler(tiny_model_dir):
    yield from endpoint_handler(tiny_model_dir)


@pytest.fixture(scope="module")
def temporal_handler(tiny_temporal_model_dir):
    yield from endpoint_handler(tiny_temporal_model_dir)


@pytest.fixture(scope="module")
def face():
    return Image.fromarray(grace_hopper_rgb()[100:340, 150:380])


@pytest.fixture(scope="module")
def frames():
    """Six crops of a face drifting left: the frames of one track."""
    photo = grace_hopper_rgb()
    return [Image.fromarray(photo[100:340, 150 + 4 * index : 380 + 4 * index]) for index in range(6)]


def scores_of(answers):
    return np.array([[item["score"] for item in answer] for answer in answers])


def expected_scores(folder, image):
    model = AUMLTModel.from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return torch.sigmoid(model(pixels).logits)[0].numpy()


def test_handler_imports_only_torch_transformers_pil(tiny_model_dir):
    tree = ast.parse((tiny_model_dir / "handler.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import)]
    modules = {alias.name.split(".")[0] for node in imports for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= ALLOWED_IMPORTS, modules - ALLOWED_IMPORTS


def test_pil_image_gives_every_au_with_probability_and_decision(handler, face, tiny_model_dir):
    answer = handler({"inputs": face})
    assert [item["label"] for item in answer] == list(ABAW_AUS)
    scores = np.array([item["score"] for item in answer])
    np.testing.assert_allclose(scores, expected_scores(tiny_model_dir, face), atol=1e-6)
    assert [item["threshold"] for item in answer] == TINY_THRESHOLDS
    assert [item["present"] for item in answer] == [s >= t for s, t in zip(scores, TINY_THRESHOLDS)]


def test_bytes_base64_and_lists_give_the_same_answer(handler, face):
    buffer = io.BytesIO()
    face.save(buffer, format="PNG")
    raw = buffer.getvalue()
    encoded = base64.b64encode(raw).decode()
    reference = handler({"inputs": face})
    assert handler({"inputs": raw}) == reference
    assert handler({"inputs": encoded}) == reference
    assert handler({"inputs": f"data:image/png;base64,{encoded}"}) == reference
    batched = handler({"inputs": [face, raw]})
    for answer in batched:  # batching may change the last float bits
        assert [item["label"] for item in answer] == [item["label"] for item in reference]
        np.testing.assert_allclose(
            [item["score"] for item in answer], [item["score"] for item in reference], atol=1e-6
        )


@pytest.mark.parametrize(
    "inputs, message",
    [("not base64 at all!", "base64-encoded image"), (b"\x00\x01 nope", "not a decodable image"), (42, "got int")],
)
def test_bad_inputs_say_what_was_expected(handler, inputs, message):
    with pytest.raises(ValueError, match=message):
        handler({"inputs": inputs})


def expected_track_scores(folder, images, causal=None):
    """`video_logits` of the images' `frame_states` (one track), and each image scored alone."""
    model = AUMLTModel.from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        track = model.video_logits(model.frame_states(pixels), causal=causal)
        return torch.sigmoid(track).numpy(), torch.sigmoid(model(pixels).logits).numpy()


@pytest.mark.parametrize("causal", [None, True])
def test_temporal_model_scores_a_list_as_one_tracks_frames(temporal_handler, frames, tiny_temporal_model_dir, causal):
    request = {"inputs": frames} | ({"parameters": {"causal": causal}} if causal is not None else {})
    answers = temporal_handler(request)
    assert [[item["label"] for item in answer] for answer in answers] == [list(ABAW_AUS)] * len(frames)
    expected, alone = expected_track_scores(tiny_temporal_model_dir, frames, causal)
    np.testing.assert_allclose(scores_of(answers), expected, atol=1e-6)
    assert np.abs(scores_of(answers) - alone).max() > 1e-3  # the other frames were used
    if causal:
        two_sided = scores_of(temporal_handler({"inputs": frames}))
        assert np.abs(scores_of(answers) - two_sided).max() > 1e-3


def test_temporal_model_scores_a_single_image_as_one_frame(temporal_handler, face, tiny_temporal_model_dir):
    answer = temporal_handler({"inputs": face})
    assert [item["label"] for item in answer] == list(ABAW_AUS)
    scores = np.array([item["score"] for item in answer])
    np.testing.assert_allclose(scores, expected_scores(tiny_temporal_model_dir, face), atol=1e-6)
    with pytest.raises(ValueError, match="parameters.causal: expected true or false"):
        temporal_handler({"inputs": face, "parameters": {"causal": "yes"}})


def test_frame_model_scores_a_list_independently_causal_or_not(handler, frames):
    answers = scores_of(handler({"inputs": frames}))
    assert (scores_of(handler({"inputs": frames, "parameters": {"causal": True}})) == answers).all()
    np.testing.assert_allclose(answers[2], scores_of(handler({"inputs": frames[2:3]}))[0], atol=1e-6)
