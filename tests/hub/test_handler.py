"""The Inference Endpoints handler, loaded from a Hub-ready folder as the endpoint does, on PIL images,
bytes and base64 strings; scores checked against the model run directly."""

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


@pytest.fixture(scope="module")
def handler(tiny_model_dir):
    """`EndpointHandler` from the folder's own handler.py, with this package made unimportable."""
    saved = sys.modules.get("modeling_au_mlt")
    sys.modules["modeling_au_mlt"] = None  # any import of the package inside the handler now fails
    try:
        spec = importlib.util.spec_from_file_location("endpoint_handler", tiny_model_dir / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module.EndpointHandler(str(tiny_model_dir))
    finally:
        sys.modules["modeling_au_mlt"] = saved


@pytest.fixture(scope="module")
def face():
    return Image.fromarray(grace_hopper_rgb()[100:340, 150:380])


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
