"""Attention maps by hand, figure layouts (panel counts, PNG sizes), and the files prediction writes."""

import numpy as np
import pytest
import torch
from inference_helpers import grace_hopper_rgb, save_rgb
from PIL import Image

from modeling_au_mlt.atomic_io import save_figure
from modeling_au_mlt.inference.attention_maps import (
    PANEL_INCHES,
    attention_figure,
    panel_grid,
    patch_attention,
    timeline_figure,
)
from modeling_au_mlt.inference.predictor import AUPredictor, Prediction


def test_patch_attention_drops_cls_averages_heads_and_keeps_row_major_order():
    first = torch.zeros(1, 2, 1, 5)
    last = torch.tensor([[[[0.2, 0.1, 0.2, 0.3, 0.2]], [[0.0, 0.3, 0.4, 0.1, 0.2]]]])  # (1, 2 heads, 1, CLS+4)
    maps = patch_attention((first, last), grid_size=2)
    np.testing.assert_allclose(maps, [[[[0.2, 0.3], [0.2, 0.2]]]])
    with pytest.raises(ValueError, match="3x3 patch grid needs 9"):
        patch_attention((last,), grid_size=3)


@pytest.mark.parametrize("faces, labels", [(1, 12), (2, 3)])
def test_attention_figure_has_one_panel_per_face_and_au(faces, labels):
    names = [f"AU{i}" for i in range(labels)]
    probabilities = np.linspace(0, 1, faces * labels).reshape(faces, labels)
    crops = [np.zeros((32, 32, 3), np.uint8)] * faces
    figure = attention_figure(crops, np.random.rand(faces, labels, 4, 4), probabilities, names, [0.5] * labels)
    assert len(figure.axes) == faces * (labels + 1)
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[1] == f"AU0 {probabilities[0, 0]:.2f}"
    assert titles[-1] == f"AU{labels - 1} {probabilities[-1, -1]:.2f}"


def test_timeline_has_one_row_per_au_and_breaks_where_the_face_is_missing():
    frames = np.arange(6)
    face_ids = np.array([0, 0, -1, -1, 0, 0])
    probabilities = np.where(face_ids[:, None] >= 0, 0.7, np.nan) * np.ones((6, 3))
    figure = timeline_figure(frames, frames / 25, face_ids, probabilities, ["A", "B", "C"], [0.5] * 3)
    assert len(figure.axes) == 3
    (line,) = figure.axes[0].get_lines()[:1]
    assert np.isnan(line.get_ydata()).sum() == 2


def test_saved_png_matches_the_layout(tmp_path):
    rows, columns = panel_grid(12)
    figure = attention_figure(
        [np.zeros((32, 32, 3), np.uint8)],
        np.random.rand(1, 12, 4, 4),
        np.random.rand(1, 12),
        [f"AU{i}" for i in range(12)],
        [0.5] * 12,
    )
    path = save_figure(figure, tmp_path / "a.png", dpi=50)
    assert (rows, columns) == (2, 7)
    assert Image.open(path).size == (round(columns * PANEL_INCHES * 50), round((rows * PANEL_INCHES + 0.5) * 50))


def test_prediction_writes_attention_and_timeline_pngs(tiny_model_dir, face_video, tmp_path):
    predictor = AUPredictor(tiny_model_dir, device="cpu")
    image = save_rgb(tmp_path / "grace.jpg", grace_hopper_rgb())
    prediction = Prediction(
        predictor, tmp_path / "out", attention_maps=True, attention_every=10, num_workers=0, progress=False
    )
    assert prediction.run([image, face_video]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    # Every 10th frame: frame 0 holds a face; frame 10 is blank, so it has no attention figure.
    assert written == [
        "clip.csv",
        "clip_attention_000000.png",
        "clip_timeline.png",
        "grace.csv",
        "grace_attention.png",
    ]
    rows, columns = panel_grid(12)
    assert Image.open(tmp_path / "out" / "grace_attention.png").size == (
        round(columns * PANEL_INCHES * 100),
        round((rows * PANEL_INCHES + 0.5) * 100),
    )
    assert Image.open(tmp_path / "out" / "clip_timeline.png").size == (900, round((0.8 * 12 + 0.8) * 100))
