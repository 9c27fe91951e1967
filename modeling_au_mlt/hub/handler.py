"""Hugging Face Inference Endpoints handler for AU-MLT: a face image in, every AU's probability and decision out.

Copied into the Hub-ready folder as `handler.py` by `modeling_au_mlt.hub.folder.save_for_hub`; it runs there
without this package, so it imports only torch, transformers and PIL and loads the model as remote code.
The image should be a face crop (the endpoint does no face detection; `scripts/predict.py` does).

Request: `{"inputs": <image>}` where the image is a PIL image, raw bytes, or a base64 string (optionally a
`data:image/...;base64,` URL); a list of images gives a list of answers. With a frame model the images of a list
are scored independently. With a temporal model (`temporal_layers > 0`) a list is the frames of one face track
in time order, each scored with context from the others (sliding windows of `temporal_window` frames), from
earlier frames only with `"parameters": {"causal": true}` (default: as the model was trained); a single image is
a one-frame track.
Answer per image: `[{"label": "AU1", "score": 0.83, "threshold": 0.5, "present": true}, ...]` for every
AU in the model's order.
"""

import base64
import binascii
import io
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from transformers import AutoImageProcessor, AutoModel


def decode_image(item: Any) -> Image.Image:
    """An RGB PIL image from a PIL image, bytes, or a base64 string; `ValueError` saying what was expected."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, str):
        try:
            item = base64.b64decode(item.split(",", 1)[1] if item.startswith("data:") else item, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"inputs: a string must be a base64-encoded image ({error})") from error
    if isinstance(item, (bytes, bytearray)):
        try:
            return Image.open(io.BytesIO(item)).convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"inputs: the bytes are not a decodable image ({error})") from error
    raise ValueError(f"inputs: expected a PIL image, image bytes or a base64 string, got {type(item).__name__}")


class EndpointHandler:
    """Loads the AU-MLT model and image processor from `path` (the repository folder on the endpoint)."""

    def __init__(self, path: str = ""):
        self.model = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
        self.processor = AutoImageProcessor.from_pretrained(path)
        self.labels = self.model.config.label_names
        self.thresholds = self.model.config.decision_thresholds()

    @torch.inference_mode()
    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        inputs = data.get("inputs", data) if isinstance(data, dict) else data
        parameters = (data.get("parameters") if isinstance(data, dict) else None) or {}
        images = [decode_image(item) for item in (inputs if isinstance(inputs, list) else [inputs])]
        pixel_values = self.processor(images=images, return_tensors="pt")["pixel_values"]  # (images, 3, S, S)
        probabilities = torch.sigmoid(self.logits(pixel_values, parameters.get("causal"))).tolist()
        answers = [
            [
                {"label": label, "score": score, "threshold": threshold, "present": score >= threshold}
                for label, score, threshold in zip(self.labels, row, self.thresholds)
            ]
            for row in probabilities
        ]
        return answers if isinstance(inputs, list) else answers[0]

    def logits(self, pixel_values: torch.Tensor, causal: Any) -> torch.Tensor:
        """`(images, labels)` logits: a temporal model's images are one track's frames; a frame model's are scored
        alone (and so causally: `causal` changes nothing)."""
        if causal is not None and not isinstance(causal, bool):
            raise ValueError(f"parameters.causal: expected true or false, got {causal!r}")
        if not self.model.config.temporal_layers:
            return self.model(pixel_values=pixel_values).logits
        return self.model.video_logits(self.model.frame_states(pixel_values), causal=causal)
