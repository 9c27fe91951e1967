"""The converter benchmark keeps working: its --tiny setting runs end to end and reports sane numbers."""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_bench_converter_tiny(tmp_path):
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "bench_converter.py"),
            "--tiny",
            "--workdir",
            str(tmp_path),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(output.read_text())
    assert len(results) >= 1 and "| frames |" in completed.stdout
    for result in results:
        # make_tree drops ~2% of rows as all -1 and ~1% for missing images: most frames must survive
        assert 0.9 * result["frames"] < result["rows"] < result["frames"]
        assert result["rows_per_s"] > 0 and result["peak_rss_mib"] > 10
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # generated trees are removed
