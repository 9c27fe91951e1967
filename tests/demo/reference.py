"""The model's own AU probabilities for the faces of a photo, computed here without the demo's code (the
package's face detector and crop, then the saved image processor and model as a user would call them): the
truth the demo's outputs are checked against. Both `tests/demo/` and `tests/inference/test_photo.py` import it
as `demo.reference` (`tests/` is on pytest's `pythonpath`)."""

import numpy as np
import torch
from transformers import AutoImageProcessor

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.inference.faces import FaceBox, FaceDetector, crop_face


def model_probabilities(model_dir, image: np.ndarray) -> tuple[list[FaceBox], np.ndarray]:
    """Face boxes of an RGB photo (largest first) and the model's sigmoid probabilities `(faces, labels)`."""
    boxes = FaceDetector().detect(image)
    assert boxes, "the reference needs a photo with a face"
    model = AUMLTModel.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    crops = [crop_face(image, box, model.config.vision_config.image_size) for box in boxes]
    with torch.no_grad():
        logits = model(**processor(images=crops, return_tensors="pt")).logits
    return boxes, torch.sigmoid(logits).numpy()
