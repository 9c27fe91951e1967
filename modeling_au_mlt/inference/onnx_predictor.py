"""AU detection with ONNX Runtime: `ONNXPredictor` scores face crops with a folder `onnx_export.export_onnx` wrote.

It offers what `predictor.Prediction` uses of `AUPredictor` (the config-derived facts of `FramePredictor`,
`probabilities`, `attention`), so `Prediction(ONNXPredictor(folder), OUT).run(inputs)` writes the same CSVs and
figures as the PyTorch model. It runs on the CPU only (`CPUExecutionProvider`), with every graph optimisation
ONNX Runtime has (https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from transformers import AutoImageProcessor

from ..configuration_au_mlt import AUMLTConfig
from .attention_maps import patch_attention
from .onnx_export import ATTENTION_NAME, INPUT_NAME, LOGITS_NAME, ONNX_FILE, onnxruntime
from .predictor import FramePredictor


class ONNXPredictor(FramePredictor):
    """An ONNX export folder (`model.onnx`, `config.json`, `preprocessor_config.json`) ready for inference on
    face crops, on the CPU."""

    def __init__(self, export_dir: str | Path):
        self.export_dir = Path(export_dir)
        self.graph = self.export_dir / ONNX_FILE
        if not self.graph.is_file():
            raise FileNotFoundError(
                f"{self.graph}: no ONNX export here; expected a folder written by scripts/export_onnx.py"
            )
        config = AUMLTConfig.from_pretrained(self.export_dir)
        if config.temporal_layers > 0:
            raise ValueError(f"{self.export_dir}: a temporal model's config; ONNX exports are of frame models only")
        super().__init__(config, AutoImageProcessor.from_pretrained(self.export_dir), torch.device("cpu"))
        try:
            outputs = onnx.load(self.graph, load_external_data=False).graph.output
        except Exception as error:  # protobuf's DecodeError and kin, on a truncated or foreign file
            raise ValueError(f"{self.graph}: not a readable ONNX model ({error})") from error
        self.has_attention = ATTENTION_NAME in {output.name for output in outputs}
        self.session: onnxruntime.InferenceSession | None = None  # made at first use, see `run`
        self.session_threads = 0

    def new_session(self) -> onnxruntime.InferenceSession:
        """An ONNX Runtime session on the CPU with as many threads as torch has now."""
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session_threads = torch.get_num_threads()
        options.intra_op_num_threads = self.session_threads
        options.inter_op_num_threads = 1  # the graph is a chain of operators: nothing to run side by side
        # Idle threads sleep instead of spinning for the next run: spinning ones keep cores busy between batches,
        # taking them from the loader's worker and other processes (https://onnxruntime.ai/docs/performance/tune-
        # performance/threading.html); on a shared 2-core machine ViT-S/16 ran faster without spinning.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])

    def run(self, pixel_values: torch.Tensor, outputs: list[str]) -> list[np.ndarray]:
        """The named outputs of the graph on face crops `(faces, 3, S, S)`.

        ONNX Runtime fixes its thread count per session, so the session is made at first use, and again whenever
        torch's thread count has changed: `Prediction.run` gives the model the cores its loader's worker leaves
        free by setting torch's thread count, and a model thread sharing the worker's core would slow both down.
        """
        if self.session is None or self.session_threads != torch.get_num_threads():
            self.session = self.new_session()
        return self.session.run(outputs, {INPUT_NAME: pixel_values.float().numpy()})

    def probabilities(self, pixel_values: torch.Tensor) -> np.ndarray:
        """`(faces, labels)` sigmoid probabilities of face crops `(faces, 3, S, S)`."""
        (logits,) = self.run(pixel_values, [LOGITS_NAME])
        return torch.sigmoid(torch.from_numpy(logits)).numpy()

    def require_attention(self) -> None:
        """`ValueError` naming the folder if its graph has no attention output (`--with_attention`)."""
        if not self.has_attention:
            raise ValueError(
                f"{self.graph}: exported without attention weights; export again with "
                "scripts/export_onnx.py --with_attention to draw attention maps"
            )

    def attention(self, pixel_values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities `(faces, labels)` and last-layer AU attention maps `(faces, labels, g, g)`; needs an
        export with attention."""
        self.require_attention()
        logits, attention = self.run(pixel_values, [LOGITS_NAME, ATTENTION_NAME])
        maps = patch_attention([torch.from_numpy(attention)], self.grid_size)
        return torch.sigmoid(torch.from_numpy(logits)).numpy(), maps
