"""Synthetic face features: arc geometry and the documented size of a few AU effects, counted in pixels."""

import numpy as np
import pytest

from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.synthetic.faces import FaceRenderer
from modeling_au_mlt.synthetic.features import _EYE_WHITE, _PUPIL, _TEETH, arc
from modeling_au_mlt.synthetic.geometry import sample_identity


def test_arc_points_lie_on_the_ellipse():
    points = arc((10.0, 20.0), (4.0, 2.0), 0.0, 90.0, 5)
    assert points[0] == pytest.approx([14.0, 20.0]) and points[-1] == pytest.approx([10.0, 22.0])
    assert ((points[:, 0] - 10) / 4) ** 2 + ((points[:, 1] - 20) / 2) ** 2 == pytest.approx(np.ones(5))


def _count(image: np.ndarray, *colors: tuple) -> int:
    """Pixels of exactly (within 6 levels) one of `colors`."""
    return int(sum((np.abs(image.astype(int) - color).sum(axis=-1) <= 6) for color in colors).astype(bool).sum())


def _face(renderer: FaceRenderer, **active: float) -> np.ndarray:
    intensities = np.zeros(len(ABAW_AUS))
    for name, value in active.items():
        intensities[ABAW_AUS.index(name)] = value
    return renderer.canonical(intensities)


@pytest.mark.parametrize("seed", range(4))
def test_lid_tightener_narrows_the_eyes_to_a_slit(seed):
    renderer = FaceRenderer(sample_identity(np.random.default_rng(seed)), 224)
    eye = (_EYE_WHITE, renderer.identity.iris, _PUPIL)
    opening = _count(_face(renderer), *eye)
    assert 0.1 < _count(_face(renderer, AU7=1.0), *eye) / opening < 0.35
    assert 0.35 < _count(_face(renderer, AU7=0.35), *eye) / opening < 0.75


@pytest.mark.parametrize("seed", range(4))
def test_lips_part_show_teeth_only_when_active(seed):
    renderer = FaceRenderer(sample_identity(np.random.default_rng(seed)), 224)
    assert _count(_face(renderer), _TEETH) == 0
    assert _count(_face(renderer, AU25=0.35), _TEETH) > 0
    assert _count(_face(renderer, AU25=1.0), _TEETH) > _count(_face(renderer, AU25=0.35), _TEETH)
    assert _count(_face(renderer, AU26=1.0), _TEETH) == 0  # a jaw drop alone opens a dark cavity, no teeth
