"""scripts/predict.py as users run it: good inputs processed, a corrupt one reported and skipped, exit 1."""

import csv
import importlib.util

import pytest
from conftest import REPO_ROOT
from inference_helpers import astronaut_rgb, save_rgb


def load_script():
    spec = importlib.util.spec_from_file_location("predict_script", REPO_ROOT / "scripts" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corrupt_file_among_good_ones(script_runner, tiny_model_dir, face_video, tmp_path):
    photo = save_rgb(tmp_path / "astronaut.png", astronaut_rgb())
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    out = tmp_path / "out"
    completed = script_runner(
        "predict.py",
        photo,
        corrupt,
        face_video,
        "--model",
        tiny_model_dir,
        "--output_dir",
        out,
        "--attention_maps",
        "--attention_every",
        "50",
        "--batch_size",
        "4",
        "--smooth",
        "3",
        "--device",
        "cpu",
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert f"error: {corrupt}" in completed.stderr
    assert "2 input(s) processed, 21 frames" in completed.stderr and "1 failure(s)" in completed.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.csv",
        "astronaut_attention.png",
        "clip.csv",
        "clip_attention_000000.png",
        "clip_timeline.png",
    ]
    with open(out / "clip.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 20


def test_all_good_inputs_exit_zero_and_bad_arguments_are_refused(capsys):
    script = load_script()
    args = script.parse_args(["a.jpg", "b.mp4", "--model", "m", "--output_dir", "o", "--no_detect"])
    assert (args.inputs, args.no_detect, args.smooth, args.batch_size) == (["a.jpg", "b.mp4"], True, None, 32)
    with pytest.raises(SystemExit):
        script.parse_args(["a.jpg", "--model", "m", "--output_dir", "o", "--batch_size", "0"])
    assert "--batch_size must be a positive integer" in capsys.readouterr().err


def test_causal_with_a_temporal_model_warns_and_refuses_smoothing(
    script_runner, tiny_temporal_model_dir, face_video, tmp_path, capsys
):
    args = ["--model", "m", "--output_dir", "o", "--causal"]
    assert load_script().parse_args(["a.mp4", *args]).causal
    with pytest.raises(SystemExit):
        load_script().parse_args(["a.mp4", *args, "--smooth", "3"])
    assert "--smooth averages over later frames too" in capsys.readouterr().err
    out = tmp_path / "out"
    completed = script_runner(
        "predict.py",
        face_video,
        "--model",
        tiny_temporal_model_dir,
        "--output_dir",
        out,
        "--device",
        "cpu",
        "--causal",
    )
    assert "trained with two-sided temporal context" in completed.stderr
    with open(out / "clip.csv", newline="") as handle:
        assert [row["face_detected"] for row in csv.DictReader(handle)] == ["1"] * 8 + ["0"] * 4 + ["1"] * 8
