"""ONNX export and the ONNX Runtime backend, checked against the PyTorch model they come from.

One export (with attention) of the tiny model whose scores spread with the input (`spread_model_dir`) is shared
by every test: each export takes about 10 s.
"""

import csv
import importlib.util
import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import REPO_ROOT, random_pixels
from inference_helpers import grace_hopper_rgb, save_rgb, save_tiny_model

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.inference import onnx_export
from modeling_au_mlt.inference.onnx_export import ONNXExportError, export_onnx
from modeling_au_mlt.inference.onnx_predictor import ONNXPredictor
from modeling_au_mlt.inference.predictor import AUPredictor

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def onnx_dir(spread_model_dir, tmp_path_factory):
    """The tiny model exported with attention."""
    output = tmp_path_factory.mktemp("onnx") / "export"
    export_onnx(spread_model_dir, output, with_attention=True)
    return output


@pytest.fixture(scope="module")
def logits_only_dir(onnx_dir, tmp_path_factory):
    """`onnx_dir` with the attention output removed from its graph: an export without attention."""
    output = tmp_path_factory.mktemp("onnx_logits_only") / "export"
    shutil.copytree(onnx_dir, output)
    graph = onnx.load(output / "model.onnx")
    graph.graph.output.pop()  # outputs: logits, cross_attention
    onnx.save(graph, output / "model.onnx")
    return output


def load_script(name: str):
    """`scripts/<name>.py` as a module, to run its `main` in this process (a fresh interpreter costs seconds)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_matches_pytorch_at_batch_1_and_3(onnx_dir, spread_model_dir):
    model = AUMLTModel.from_pretrained(spread_model_dir, attn_implementation="eager").eval()
    session = onnxruntime.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    assert [o.name for o in session.get_outputs()] == ["logits", "cross_attention"]
    for batch_size in (1, 3):
        pixel_values = random_pixels(batch_size, seed=batch_size)
        logits, attention = session.run(None, {"pixel_values": pixel_values.numpy()})
        with torch.no_grad():
            expected = model(pixel_values, output_attentions=True)
        assert logits.shape == (batch_size, 12)
        assert np.abs(logits - expected.logits.numpy()).max() <= TOLERANCE
        reference = expected.cross_attentions[-1].numpy()  # (batch, heads, labels, 1 + patches)
        assert attention.shape == reference.shape
        np.testing.assert_allclose(attention, reference, atol=1e-6)
    record = json.loads((onnx_dir / "onnx_export.json").read_text())
    assert record["opset"] == 18 and record["with_attention"] and record["attention_implementation"] == "eager"
    assert set(record["max_abs_difference"]) == {
        f"{name}_batch{size}" for name in ("logits", "cross_attention") for size in (1, 4)
    }
    assert all(value <= TOLERANCE for value in record["max_abs_difference"].values())
    assert {"config.json", "preprocessor_config.json"} <= {path.name for path in onnx_dir.iterdir()}


def test_a_graph_that_differs_from_pytorch_is_refused_and_nothing_written(
    onnx_dir, tmp_path, tmp_path_factory, monkeypatch
):
    # The exported graph checked against another model (N(0, 0.02) decoder, not Glorot): a wrong export.
    other_model = save_tiny_model(tmp_path_factory.mktemp("other_model"), decoder_initializer="normal")
    monkeypatch.setattr(
        onnx_export, "write_graph", lambda model, path, opset, attention: shutil.copy(onnx_dir / "model.onnx", path)
    )
    with pytest.raises(
        ONNXExportError, match=r"largest absolute differences logits_batch1 [0-9.e-]+.*tolerance 0.0001"
    ):
        export_onnx(other_model, tmp_path / "export", with_attention=True)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_temporal_model_is_refused(tiny_temporal_model_dir, tmp_path, capsys):
    arguments = ["--model", str(tiny_temporal_model_dir), "--output", str(tmp_path / "export")]
    assert load_script("export_onnx").main(arguments) == 1
    assert f"error: {tiny_temporal_model_dir}: a temporal model (temporal_layers=1)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_onnx_predictor_matches_au_predictor(onnx_dir, spread_model_dir):
    onnx_predictor, torch_predictor = ONNXPredictor(onnx_dir), AUPredictor(spread_model_dir, device="cpu")
    for name in ("image_size", "grid_size", "label_names", "smoothing_window", "temporal"):
        assert getattr(onnx_predictor, name) == getattr(torch_predictor, name)
    np.testing.assert_array_equal(onnx_predictor.thresholds, torch_predictor.thresholds)
    pixel_values = random_pixels(3, seed=7)
    np.testing.assert_allclose(
        onnx_predictor.probabilities(pixel_values), torch_predictor.probabilities(pixel_values), atol=TOLERANCE
    )
    for found, expected in zip(onnx_predictor.attention(pixel_values), torch_predictor.attention(pixel_values)):
        np.testing.assert_allclose(found, expected, atol=1e-6)


def test_onnx_session_follows_torch_threads(onnx_dir):
    threads = torch.get_num_threads()
    predictor = ONNXPredictor(onnx_dir)
    try:
        torch.set_num_threads(1)
        predictor.probabilities(random_pixels(1))
        assert predictor.session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(threads)


def test_predict_onnx_backend_writes_the_pytorch_csv(onnx_dir, spread_model_dir, face_video, tmp_path):
    photo = save_rgb(tmp_path / "grace_hopper.png", grace_hopper_rgb())
    outputs = {}
    for backend, model in (("pytorch", spread_model_dir), ("onnx", onnx_dir)):
        outputs[backend] = tmp_path / backend
        arguments = [
            str(photo),
            str(face_video),
            "--model",
            str(model),
            "--output_dir",
            str(outputs[backend]),
            "--backend",
            backend,
            "--attention_maps",
            "--attention_every",
            "50",
            "--batch_size",
            "4",
            "--device",
            "cpu",
            "--quiet",
        ]
        assert load_script("predict").main(arguments) == 0
    names = sorted(path.name for path in outputs["pytorch"].iterdir())
    assert sorted(path.name for path in outputs["onnx"].iterdir()) == names
    assert "grace_hopper_attention.png" in names and "clip_timeline.png" in names
    for stem in ("grace_hopper", "clip"):
        expected, found = read_csv(outputs["pytorch"] / f"{stem}.csv"), read_csv(outputs["onnx"] / f"{stem}.csv")
        assert len(found) == len(expected) > 0 and found[0].keys() == expected[0].keys()
        assert any(row["face_detected"] == "1" for row in expected)
        for expected_row, found_row in zip(expected, found):
            for column, value in expected_row.items():
                if column.endswith("_prob") and value:
                    assert abs(float(found_row[column]) - float(value)) <= TOLERANCE + 5e-5  # CSV rounds to 1e-4
                else:  # frame, timestamp, face id, box, decisions
                    assert found_row[column] == value, column


def test_attention_maps_need_an_export_with_attention(logits_only_dir, face_video, tmp_path, capsys):
    script = load_script("predict")
    arguments = [str(face_video), "--model", str(logits_only_dir), "--output_dir", str(tmp_path / "out")]
    assert script.main([*arguments, "--backend", "onnx", "--attention_maps", "--quiet"]) == 1
    assert f"error: {logits_only_dir / 'model.onnx'}: exported without attention weights" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert ONNXPredictor(logits_only_dir).probabilities(random_pixels(2)).shape == (2, 12)
    with pytest.raises(SystemExit):
        script.parse_args([*arguments, "--backend", "onnx", "--device", "cuda"])
    assert "the onnx backend runs on the CPU" in capsys.readouterr().err


def test_a_folder_without_a_readable_export_is_named(spread_model_dir, onnx_dir, tmp_path, capsys):
    script = load_script("predict")
    arguments = ["a.jpg", "--model", str(spread_model_dir), "--output_dir", "out", "--backend", "onnx"]
    assert script.main(arguments) == 1
    assert f"error: {spread_model_dir / 'model.onnx'}: no ONNX export here" in capsys.readouterr().err
    broken = shutil.copytree(onnx_dir, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValueError, match=f"{broken / 'model.onnx'}: not a readable ONNX model"):
        ONNXPredictor(broken)
