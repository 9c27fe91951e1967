"""The video benchmark keeps working: its --tiny setting runs end to end and reports every stage."""

import json

from benchmarks.bench_video import main


def test_tiny_setting_reports_every_stage(tmp_path, capsys):
    assert main(["--tiny", "--json", str(tmp_path / "bench.json")]) == 0
    (row,) = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert row["frames"] == 20 and row["frames_without_face"] == 10  # one second of 10 fps without a face
    for stage in ("decode", "decode+detect", "model", "writing", "load"):
        assert row[f"{stage}_seconds"] > 0
    assert row["frames_per_second"] == row["frames"] / row["seconds"]
    assert "| toy-32 | 1 |" in capsys.readouterr().out
