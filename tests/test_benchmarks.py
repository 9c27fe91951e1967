"""The benchmark scripts keep working (tiny settings) and their helpers compute what they claim.

No timing is asserted: speed goals are checked by running the benchmarks, not by tests.
"""

import json

import numpy as np
import pytest
import torch
from conftest import random_pixels, tiny_config
from datasets import load_from_disk

from benchmarks import (
    bench_attention,
    bench_data,
    bench_inference,
    bench_quality,
    bench_training,
    plot_learning_curves,
    run_all,
)
from benchmarks.common import interleaved_rounds, markdown_table, median, spread
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
    labels, h, f, heads = config.num_labels, config.hidden_size, config.ffn_dim, config.decoder_attention_heads
    self_attention = 4 * labels * h * h + 2 * labels * labels * h
    if config.cross_attention_form == "absorbed":  # query, key-absorbed query, value and output maps on L rows
        cross_attention = 4 * labels * h * h + 2 * heads * labels * tokens * h
    else:
        cross_attention = 2 * labels * h * h + 2 * tokens * h * h + 2 * labels * tokens * h
    decoder_layer = self_attention + cross_attention + 2 * labels * h * f
    macs = patch_embedding + vision.num_hidden_layers * encoder_layer + config.decoder_layers * decoder_layer
    return 2 * batch_size * macs


@pytest.mark.parametrize("cross_attention", ["projected", "absorbed"])
def test_forward_flops_matches_hand_count(cross_attention):
    config = tiny_config(decoder_cross_attention=cross_attention)
    model = AUMLTModel(config).eval()
    assert bench_inference.forward_flops(model, torch.randn(3, 3, 32, 32)) == hand_counted_flops(config, 3)


def test_decoder_only_runs_the_models_forward_on_the_cached_encoder_output():
    model = AUMLTModel(tiny_config()).eval()
    pixels, other = random_pixels(2, seed=1), random_pixels(2, seed=2)
    decoder = bench_inference.decoder_only(model, pixels)
    with torch.no_grad():
        torch.testing.assert_close(decoder(pixels).logits, model(pixels).logits, rtol=0, atol=0)
        # the encoder does not run: other pixels give the cached images' logits
        torch.testing.assert_close(decoder(other).logits, model(pixels).logits, rtol=0, atol=0)


def test_bench_inference_tiny(tmp_path):
    bench_inference.main(
        [
            "--presets",
            "tiny",
            "--batch_sizes",
            "2",
            "--repeats",
            "2",
            "--matmul_size",
            "64",
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["machine"]["cores"] >= 1
    (row,) = result["results"]
    assert set(row["median_seconds"]) == {
        "vit_encoder",
        "au_mlt_projected",
        "au_mlt_absorbed",
        "vit_classifier",
        "matmul",
        "au_mlt_projected_decoder",
        "au_mlt_absorbed_decoder",
    }
    assert set(row["decoder_cpu_overhead"]) == {"au_mlt_projected", "au_mlt_absorbed"}
    assert row["default_cross_attention"] == bench_inference.au_mlt_config("tiny").cross_attention_form
    assert row["images_per_second"]["au_mlt_absorbed"] == pytest.approx(2 / row["median_seconds"]["au_mlt_absorbed"])
    assert row["time_ratio_to_encoder"]["vit_encoder"] == 1.0


def test_bench_training_tiny(tmp_path):
    bench_training.main(
        [
            "--preset",
            "tiny",
            "--batch_size",
            "2",
            "--steps",
            "3",
            "--rounds",
            "1",
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    result = json.loads((tmp_path / "r.json").read_text())
    # 1 timed block of 3 steps per model; the block's first step is not timed
    assert result["timed_steps"] == {"au_mlt_projected": 2, "au_mlt_absorbed": 2, "vit_classifier": 2}
    assert all(value > 100 for value in result["peak_rss_mib"].values())
    for name in ("au_mlt_projected", "au_mlt_absorbed"):
        ratio = result["median_step_seconds"][name] / result["median_step_seconds"]["vit_classifier"]
        assert result["slowdown"][name] == pytest.approx(ratio - 1)


def test_bench_data_tiny(tmp_path):
    bench_data.main([*run_all.SETTINGS["tiny"]["data"], "--output", str(tmp_path / "r.json")])  # CI's setting
    rates = json.loads((tmp_path / "r.json").read_text())["samples_per_second"]
    assert set(rates) == {
        "transform, 0 workers",
        "transform, 1 workers",
        "training, in-memory tensors",
        "training, transform, 0 workers",
        "training, transform, 1 workers",
    }
    assert all(rate > 0 for rate in rates.values())


def test_face_dataset_has_converter_columns():
    dataset = bench_data.face_dataset(3)
    assert dataset.column_names == ["image", "labels", "video_id", "frame"]
    assert dataset[0]["image"].size == (bench_data.FACE_SIZE, bench_data.FACE_SIZE)
    assert dataset[2]["frame"] == 3


def test_pixel_share_by_hand():
    attention = np.zeros((2, 2, 2))
    attention[0, 0, 0] = 1.0  # label 0: all mass on the top-left patch
    attention[1] = 0.25  # label 1: uniform
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # top-left quadrant
    masks[1, :, :1] = True  # the left column: a quarter of the pixels
    np.testing.assert_allclose(bench_attention.pixel_share(attention, masks), [1.0, 0.25])


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    """bench_quality on a tiny setting (2 variants, 2 seeds, 2 steps); its work folder and JSON."""
    work = tmp_path_factory.mktemp("quality")
    arguments = run_all.SETTINGS["tiny"]["quality"]
    bench_quality.main([*arguments, "--work_dir", str(work), "--output", str(work / "quality.json")])
    return work, json.loads((work / "quality.json").read_text())


def test_bench_quality_tiny(quality_run):
    work, result = quality_run
    assert set(result["runs"]) == {"paper", "vit_linear_head", "mean_pool_linear"}
    aus = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
    for variant, runs in result["runs"].items():
        assert len(runs) == 2
        assert set(runs[0]) == {
            "eval_mean_f1",
            "test_mean_f1",
            "test_tuned_mean_f1",
            "test_unguarded_mean_f1",
            *(f"test_f1_{name}" for name in aus),
        }
        values = [run["test_mean_f1"] for run in runs]
        assert np.mean([runs[0][f"test_f1_{name}"] for name in aus]) == pytest.approx(values[0])
        assert result["summary"][variant]["test_mean_f1"]["mean"] == pytest.approx(np.mean(values))
        assert result["summary"][variant]["test_mean_f1"]["std"] == pytest.approx(np.std(values, ddof=1))
    for variant in ("vit_linear_head", "mean_pool_linear"):
        expected = [
            run["test_mean_f1"] - paper["test_mean_f1"]
            for run, paper in zip(result["runs"][variant], result["runs"]["paper"])
        ]
        assert result["paired_test_differences"][variant] == pytest.approx(expected)
    assert (work / bench_quality.PAPER_MODEL_DIR / "model.safetensors").exists()


def test_baselines_share_the_paper_models_encoder_initialisation(quality_run):
    work, _ = quality_run
    model_args, data_args, _ = bench_quality.library_arguments(
        work / "synthetic_dataset",
        work / "x",
        "paper",
        0,
        bench_quality.parse_args([*run_all.SETTINGS["tiny"]["quality"], "--work_dir", str(work)]),
    )
    names = ["AU1", "AU2"]
    paper = bench_quality.variant_model("paper", model_args, names, data_args.image_size, seed=4)
    for variant in ("vit_linear_head", "mean_pool_linear"):
        baseline = bench_quality.variant_model(variant, model_args, names, data_args.image_size, seed=4)
        encoder = baseline.vit if variant == "vit_linear_head" else baseline.encoder
        assert (
            model_args.encoder_stem == "conv" and type(encoder.embeddings.patch_embeddings).__name__ == "AUMLTConvStem"
        )
        for (name, tensor), reference in zip(encoder.state_dict().items(), paper.encoder.state_dict().values()):
            torch.testing.assert_close(tensor, reference, rtol=0, atol=0, msg=name)
        pixels = torch.randn(2, 3, data_args.image_size, data_args.image_size)
        assert baseline.eval()(pixel_values=pixels).logits.shape == (2, 2)


def test_labelled_frames_match_the_converted_dataset(quality_run):
    work, _ = quality_run
    tree = work / "synthetic_tree"
    regions = json.loads((tree / "regions.json").read_text())
    assert bench_attention.scored_split(regions) == "Test_Set"
    label_names = json.loads((work / "synthetic_dataset" / "label_names.json").read_text())
    names = label_names[::-1]  # the model's order need not be the files' order
    frames = bench_attention.labelled_frames(tree, regions, "Test_Set", names, max_frames=10**6)
    test = load_from_disk(str(work / "synthetic_dataset"))["test"]
    expected = {
        (video, frame): labels[::-1] for video, frame, labels in zip(test["video_id"], test["frame"], test["labels"])
    }
    assert {(video, frame): list(labels) for video, frame, labels in frames} == expected
    assert len(bench_attention.labelled_frames(tree, regions, "Test_Set", names, max_frames=7)) == 7


def test_bench_attention_tiny(quality_run, tmp_path):
    work, _ = quality_run
    bench_attention.main(
        [
            "--model_dir",
            str(work / bench_quality.PAPER_MODEL_DIR),
            "--synthetic_tree",
            str(work / "synthetic_tree"),
            "--max_frames",
            "4",
            "--figure",
            str(tmp_path / "figure.png"),
            "--output",
            str(tmp_path / "a.json"),
        ]
    )
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["frames"] == 4 and result["split"] == "Test_Set"
    for stats in result["per_au"].values():
        assert 1 <= stats["frames_present"] <= 4
        assert 0 <= stats["attention_inside"] <= 1 and 0 < stats["region_share"] < 1
        assert stats["lift"] == pytest.approx(stats["attention_inside"] / stats["region_share"])
    assert result["median_lift"] == pytest.approx(np.median([stats["lift"] for stats in result["per_au"].values()]))
    assert (tmp_path / "figure.png").stat().st_size > 1000


def test_run_all_commands_cover_every_section(tmp_path):
    commands = run_all.commands("quick", tmp_path / "results", tmp_path / "work", tmp_path / "figure.png")
    assert {"inference", "training", "data", "quality", "attention"} <= set(commands)
    for name, arguments in commands.items():
        assert arguments[0].endswith(".py") and str(tmp_path / "results" / f"{name}.json") in arguments
    assert commands["attention"][commands["attention"].index("--model_dir") + 1] == str(
        tmp_path / "work" / "paper_model"
    )


def test_learning_curves_read_every_evaluation(tmp_path):
    history = [
        {"step": 50, "loss": 0.4},
        {"step": 100, "eval_mean_f1": 0.2},
        {"step": 150, "loss": 0.3},
        {"step": 200, "eval_mean_f1": 0.5},
    ]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    plot_learning_curves.main(
        [
            "--run",
            f"conv stem={tmp_path / 'a'}",
            "--run",
            f"patch={tmp_path / 'b'}",
            "--figure",
            str(tmp_path / "curve.png"),
            "--output",
            str(tmp_path / "curve.json"),
        ]
    )
    curves = json.loads((tmp_path / "curve.json").read_text())["curves"]
    assert curves == {"conv stem": [[100, 0.2], [200, 0.5]], "patch": [[100, 0.2], [200, 0.5]]}
    assert (tmp_path / "curve.png").stat().st_size > 1000
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "trainer_state.json").write_text(json.dumps({"log_history": history[:1]}))
    with pytest.raises(ValueError, match="eval_steps"):
        plot_learning_curves.evaluation_curve(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        plot_learning_curves.evaluation_curve(tmp_path / "missing")
