"""The benchmark scripts keep working (tiny settings) and their helpers compute what they claim.

No timing is asserted: speed goals are checked by running the benchmarks, not by tests.
"""

import json

import pytest
import torch

from benchmarks import bench_data, bench_inference, bench_training
from benchmarks.common import interleaved_rounds, markdown_table, median, spread, write_json
from modeling_au_mlt import AUMLTConfig, AUMLTModel


def test_interleaved_rounds_rotates_order_after_warmup():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name) or [len(calls)]) for name in "abc"}
    values = interleaved_rounds(candidates, rounds=3, warmup=1)
    assert calls == list("abc" + "abc" + "bca" + "cab")
    assert values == {"a": [4, 9, 11], "b": [5, 7, 12], "c": [6, 8, 10]}


def test_median_and_spread():
    assert median([3.0, 1.0, 2.0]) == 2.0
    # quartiles of 1..8 (exclusive method): 2.25 and 6.75, median 4.5 -> (6.75 - 2.25) / 2 / 4.5
    assert spread([float(value) for value in range(1, 9)]) == pytest.approx(0.5)


def test_write_json_is_complete_and_leaves_no_temporary(tmp_path):
    write_json(tmp_path / "out" / "result.json", {"a": 1})
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"a": 1}
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["result.json"]


def test_markdown_table():
    assert markdown_table(["x", "y"], [[1, 0.123456]]) == "| x | y |\n|---|---|\n| 1 | 0.123 |"


def hand_counted_flops(config: AUMLTConfig, batch_size: int) -> int:
    """2 x multiply-adds of every matrix product of AU-MLT's forward, counted by hand from the config."""
    vision = config.vision_config
    d, m = vision.hidden_size, vision.intermediate_size
    patches = (vision.image_size // vision.patch_size) ** 2
    tokens = patches + 1
    patch_embedding = patches * 3 * vision.patch_size**2 * d
    encoder_layer = 4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * m
    labels, h, f = config.num_labels, config.hidden_size, config.ffn_dim
    self_attention = 4 * labels * h * h + 2 * labels * labels * h
    cross_attention = 2 * labels * h * h + 2 * tokens * h * h + 2 * labels * tokens * h
    decoder_layer = self_attention + cross_attention + 2 * labels * h * f
    macs = patch_embedding + vision.num_hidden_layers * encoder_layer + config.decoder_layers * decoder_layer
    return 2 * batch_size * macs


def test_forward_flops_matches_hand_count():
    config = AUMLTConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8),
        decoder_attention_heads=4,
    )
    model = AUMLTModel(config).eval()
    assert bench_inference.forward_flops(model, torch.randn(3, 3, 32, 32)) == hand_counted_flops(config, 3)


def test_bench_inference_tiny(tmp_path):
    bench_inference.main(["--presets", "tiny", "--batch_sizes", "2", "--repeats", "2", "--matmul_size", "64", "--output", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["machine"]["cores"] >= 1
    (row,) = result["results"]
    assert set(row["median_seconds"]) == {"vit_encoder", "au_mlt", "vit_classifier", "matmul"}
    assert row["images_per_second"]["au_mlt"] == pytest.approx(2 / row["median_seconds"]["au_mlt"])
    assert row["time_ratio_to_encoder"]["vit_encoder"] == 1.0


def test_bench_training_tiny(tmp_path):
    bench_training.main(["--preset", "tiny", "--batch_size", "2", "--steps", "3", "--rounds", "1", "--output", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    # 1 timed block of 3 steps per model; the block's first step is not timed
    assert result["timed_steps"] == {"au_mlt": 2, "vit_classifier": 2}
    assert all(value > 100 for value in result["peak_rss_mib"].values())
    ratio = result["median_step_seconds"]["au_mlt"] / result["median_step_seconds"]["vit_classifier"]
    assert result["au_mlt_slowdown"] == pytest.approx(ratio - 1)


def test_bench_data_tiny(tmp_path):
    bench_data.main(["--preset", "tiny", "--batch_size", "2", "--batches", "1", "--steps", "2", "--rounds", "1", "--workers", "0", "1", "--output", str(tmp_path / "r.json")])
    rates = json.loads((tmp_path / "r.json").read_text())["samples_per_second"]
    assert set(rates) == {
        "transform, 0 workers", "transform, 1 workers", "training, in-memory tensors",
        "training, transform, 0 workers", "training, transform, 1 workers",
    }
    assert all(rate > 0 for rate in rates.values())


def test_face_dataset_has_converter_columns():
    dataset = bench_data.face_dataset(3)
    assert dataset.column_names == ["image", "labels", "video_id", "frame"]
    assert dataset[0]["image"].size == (bench_data.FACE_SIZE, bench_data.FACE_SIZE)
    assert dataset[2]["frame"] == 3
