"""Atomic outputs: complete files under their final names, nothing left behind by a failure."""

import json

import pytest
from matplotlib.figure import Figure
from PIL import Image

from modeling_au_mlt.atomic_io import atomic_output, replace_dir, save_figure, write_json


def test_write_json_is_complete_and_leaves_no_temporary(tmp_path):
    write_json(tmp_path / "out" / "result.json", {"a": [1, 2]})
    write_json(tmp_path / "out" / "compact.json", {"a": [1, 2]}, compact=True)
    assert (tmp_path / "out" / "result.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert (tmp_path / "out" / "compact.json").read_text() == '{"a":[1,2]}'
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["compact.json", "result.json"]


def test_a_failed_write_keeps_the_earlier_file(tmp_path):
    write_json(tmp_path / "result.json", {"run": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "result.json", {"run": object()})
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "result.json") as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads((tmp_path / "result.json").read_text()) == {"run": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]


def test_save_figure_writes_the_format_of_the_suffix(tmp_path):
    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1])
    assert Image.open(save_figure(figure, tmp_path / "a.png", dpi=50)).size == (100, 50)
    assert (save_figure(figure, tmp_path / "a.svg")).read_text().lstrip().startswith("<?xml")


def test_replace_dir_swaps_and_can_keep_entries_the_new_folder_lacks(tmp_path):
    output, complete = tmp_path / "out", tmp_path / "complete"
    (output / "checkpoint-1").mkdir(parents=True)
    (output / "model.txt").write_text("old")
    complete.mkdir()
    (complete / "model.txt").write_text("new")
    replace_dir(complete, output, keep_other_entries=True)
    assert (output / "model.txt").read_text() == "new" and (output / "checkpoint-1").is_dir()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
