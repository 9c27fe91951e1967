"""Export a saved AU-MLT frame model to ONNX and check the export against PyTorch on real face crops.

`export_onnx(model, output_dir)` writes `output_dir/model.onnx` (input `pixel_values` with a dynamic batch
dimension, output `logits`, and with `with_attention` the last decoder layer's `cross_attention`
`(batch, heads, labels, 1 + patches)`), the model's `config.json` and `preprocessor_config.json` beside it, and
`onnx_export.json` with what the self-check measured. The folder appears only once the check has passed: a
failed export leaves no `model.onnx` behind.

The graph comes from `torch.onnx.export(..., dynamo=True)` (torch.export, then onnxscript's translation; see
https://pytorch.org/docs/stable/onnx_export.html). The legacy TorchScript exporter (`dynamo=False`) traced this
model into a graph whose logits differed from PyTorch's by 0.75, so it is not used. Without attention the model
is exported with its default SDPA attention: exported, it matched PyTorch as closely as eager attention (about
2e-6 on ViT-S/16 112 px) and ran about 8% faster at batch 1 and 15% at batch 32 in ONNX Runtime (a rough probe
on a shared 2-core machine). Attention weights need eager attention (SDPA does not return them), so an export
with attention uses it throughout.

A temporal model (`temporal_layers > 0`) is refused: it scores a video per face track, frame states first and
then a variable number of frames at once, which is not one graph over a batch of images.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from matplotlib import cbook
from torch import nn
from transformers import AutoImageProcessor

from ..atomic_io import replace_dir, write_json
from ..configuration_au_mlt import AUMLTConfig
from ..modeling_au_mlt import AUMLTModel
from .faces import FaceDetector, crop_face
from .media import read_image

try:
    import onnx
    import onnxruntime
except ImportError as error:  # the `onnx` extra of setup.cfg
    raise ImportError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'au-mlt[onnx]'") from error

ONNX_FILE = "model.onnx"
REPORT_FILE = "onnx_export.json"
DEFAULT_OPSET = 18
TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| accepted on logits and attention weights
INPUT_NAME = "pixel_values"
LOGITS_NAME = "logits"
ATTENTION_NAME = "cross_attention"
CROP_MARGINS = (0.1, 0.2, 0.4)  # face crops of the check: tight to loose around the detected box


class ONNXExportError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


class ExportedForward(nn.Module):
    """What the graph computes: `pixel_values` -> logits, and the last layer's cross-attention if asked."""

    def __init__(self, model: AUMLTModel, with_attention: bool):
        super().__init__()
        self.model = model
        self.with_attention = with_attention

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        output = self.model(pixel_values, output_attentions=self.with_attention)
        return (output.logits, output.cross_attentions[-1]) if self.with_attention else output.logits


def frame_model_config(model: str | Path) -> AUMLTConfig:
    """The configuration of `model`; `ValueError` for a temporal model, which has no single-graph export."""
    config = AUMLTConfig.from_pretrained(model)
    if config.temporal_layers > 0:
        raise ValueError(
            f"{model}: a temporal model (temporal_layers={config.temporal_layers}) cannot be exported to ONNX: "
            "it scores each face track of a video over a varying number of frames, which is not one graph over "
            "a batch of images; export a frame model (temporal_layers=0)"
        )
    return config


def face_crops(processor, image_size: int) -> torch.Tensor:
    """Preprocessed real face crops `(faces, 3, S, S)`: Grace Hopper's portrait (matplotlib's sample data),
    found by the package's face detector and cropped with several margins, and the mirror image of one."""
    photo = read_image(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    boxes = FaceDetector().detect(photo)
    if not boxes:
        raise ONNXExportError("grace_hopper.jpg: the face detector found no face to check the export on")
    crops = [crop_face(photo, boxes[0], image_size, margin) for margin in CROP_MARGINS]
    crops.append(np.ascontiguousarray(crops[1][:, ::-1]))
    return processor(images=crops, return_tensors="pt")["pixel_values"]


def write_graph(model: AUMLTModel, path: Path, opset: int, with_attention: bool) -> None:
    """`model` as an ONNX graph at `path`: `pixel_values` in (dynamic batch), logits (and attention) out."""
    example = torch.zeros(2, 3, model.config.vision_config.image_size, model.config.vision_config.image_size)
    torch.onnx.export(
        ExportedForward(model, with_attention).eval(),
        (example,),
        str(path),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[LOGITS_NAME, ATTENTION_NAME] if with_attention else [LOGITS_NAME],
        dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
        opset_version=opset,
        external_data=False,  # one self-contained file (ViT-B's weights are far below protobuf's 2 GB limit)
        verbose=False,
    )


def largest_differences(model: AUMLTModel, path: Path, pixel_values: torch.Tensor, with_attention: bool) -> dict:
    """Largest |ONNX Runtime - PyTorch| of each output at batch 1 and at the batch of all `pixel_values`."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    differences = {}
    for batch in (pixel_values[:1], pixel_values):
        logits, *attention = session.run(None, {INPUT_NAME: batch.numpy()})
        with torch.inference_mode():
            expected = model(batch, output_attentions=with_attention)
        found = {LOGITS_NAME: (logits, expected.logits)}
        if with_attention:
            found[ATTENTION_NAME] = (attention[0], expected.cross_attentions[-1])
        for name, (value, reference) in found.items():
            differences[f"{name}_batch{len(batch)}"] = float(np.abs(value - reference.numpy()).max())
    return differences


def check_differences(differences: dict[str, float], tolerance: float) -> None:
    """`ONNXExportError` naming every output whose difference exceeds `tolerance`."""
    failed = {name: value for name, value in differences.items() if not value <= tolerance}  # NaN fails too
    if failed:
        found = ", ".join(f"{name} {value:.3g}" for name, value in failed.items())
        raise ONNXExportError(
            f"the ONNX export does not match PyTorch on real face crops: largest absolute differences {found}, "
            f"tolerance {tolerance:g}; the export was discarded"
        )


def export_onnx(
    model: str | Path, output_dir: str | Path, opset: int = DEFAULT_OPSET, with_attention: bool = False
) -> dict:
    """Export the AU-MLT folder or Hub id `model` to `output_dir` and check it; the `onnx_export.json` record.

    The export is written to a staging folder beside `output_dir`, checked against PyTorch (largest absolute
    difference at most `TOLERANCE` on logits, and attention weights when exported, at batch 1 and 4), and only
    then renamed to `output_dir`; files of an earlier `output_dir` that this export does not write are kept.
    """
    config = frame_model_config(model)
    started = time.perf_counter()
    reference = AUMLTModel.from_pretrained(model, config=config, dtype=torch.float32, use_safetensors=True).eval()
    processor = AutoImageProcessor.from_pretrained(model)
    # Attention weights need eager attention; without them the default (SDPA) exports as exactly and runs faster.
    reference.set_attn_implementation("eager" if with_attention else reference.config._attn_implementation)
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Removed with whatever it holds if anything fails; after the rename below it is empty.
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}.", dir=output_dir.parent) as work:
        staging = Path(work) / output_dir.name
        staging.mkdir()
        write_graph(reference, staging / ONNX_FILE, opset, with_attention)
        onnx.checker.check_model(str(staging / ONNX_FILE))
        crops = face_crops(processor, config.vision_config.image_size)
        differences = largest_differences(reference, staging / ONNX_FILE, crops, with_attention)
        check_differences(differences, TOLERANCE)
        config.save_pretrained(staging)
        processor.save_pretrained(staging)
        record = export_record(model, opset, with_attention, reference, differences, time.perf_counter() - started)
        write_json(staging / REPORT_FILE, record)
        replace_dir(staging, output_dir, keep_other_entries=True)
    return record


def export_record(
    model: str | Path, opset: int, with_attention: bool, reference: AUMLTModel, differences: dict, seconds: float
) -> dict:
    """What `onnx_export.json` keeps: the export's settings, what its check measured, the library versions."""
    return {
        "source_model": str(model),
        "opset": opset,
        "with_attention": with_attention,
        "attention_implementation": reference.config._attn_implementation,
        "tolerance": TOLERANCE,
        "max_abs_difference": differences,
        "check_inputs": "face crops of grace_hopper.jpg (matplotlib sample data)",
        "export_seconds": round(seconds, 1),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }


__all__ = ["ONNXExportError", "export_onnx"]
