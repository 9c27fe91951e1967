"""The ONNX Runtime benchmark keeps working: its --tiny setting exports, times both backends and reports ratios.

No timing is asserted: speed goals are checked by running the benchmark alone on the machine.
"""

import json

import pytest

from benchmarks import bench_onnx, run_all


def test_tiny_setting_times_both_backends(tmp_path, capsys):
    assert bench_onnx.main(["--tiny", "--output", str(tmp_path / "onnx.json")]) == 0
    result = json.loads((tmp_path / "onnx.json").read_text())
    assert result["section"] == "onnx" and result["model"] == "toy-32" and "machine" in result
    assert max(result["export"]["max_abs_difference"].values()) <= 1e-4
    assert [row["batch_size"] for row in result["model_alone"]] == [1, 4]
    video = result["video"]
    for ratios in [row[clock] for row in result["model_alone"] for clock in ("wall", "cpu")] + [video]:
        rates = ratios["per_second"]
        assert ratios["onnx_speedup"] == pytest.approx(rates["onnx"] / rates["pytorch"])
    for runs in video["runs"].values():
        (run,) = runs  # one timed round after the warm-up
        assert run["frames"] == video["frames"] == 20 and run["faces"] > 0
    assert "| video end to end (20 frames) |" in capsys.readouterr().out


def test_run_all_runs_it_at_each_setting(tmp_path):
    for setting, size in (("full", []), ("quick", ["--quick"]), ("tiny", ["--tiny"])):
        commands = run_all.commands(setting, tmp_path / "results", tmp_path / "work", tmp_path / "figure.png")
        assert commands["onnx"][1:] == [*size, "--output", str(tmp_path / "results" / "onnx.json")]
