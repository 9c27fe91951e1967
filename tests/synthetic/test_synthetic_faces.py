"""Synthetic faces: each AU acts only inside its region and visibly so; rendering is deterministic."""

import dataclasses

import numpy as np
import pytest

from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.synthetic.faces import FaceRenderer, strengths
from modeling_au_mlt.synthetic.geometry import (
    FrameConditions,
    au_regions,
    polygon_mask,
    pose_matrix,
    sample_identity,
    transform_polygons,
)


def _posed(seed: int) -> FrameConditions:
    """A clearly non-trivial pose and lighting, without noise."""
    rng = np.random.default_rng([seed, 7])
    return FrameConditions(
        angle=rng.uniform(-6, 6),
        scale=rng.uniform(0.94, 1.06),
        shift_x=rng.uniform(-3, 3),
        shift_y=rng.uniform(-3, 3),
        gain=1.1,
        slope=0.2,
        light_direction=rng.uniform(0, 6.3),
    )


@pytest.mark.parametrize("image_size", [112, 64])
@pytest.mark.parametrize("seed", range(6))
def test_each_au_changes_pixels_only_inside_its_region(image_size, seed):
    renderer = FaceRenderer(sample_identity(np.random.default_rng(seed)), image_size)
    conditions = _posed(seed)
    matrix = pose_matrix(renderer.identity, conditions, image_size)
    regions = au_regions(renderer.identity, image_size)
    neutral = renderer.render(np.zeros(len(ABAW_AUS)), conditions).astype(int)
    for index, name in enumerate(ABAW_AUS):
        inside = polygon_mask(transform_polygons(regions[name], matrix), image_size)
        for intensity in (0.35, 1.0):
            active = np.zeros(len(ABAW_AUS))
            active[index] = intensity
            difference = np.abs(renderer.render(active, conditions).astype(int) - neutral).sum(axis=-1)
            assert difference[~inside].max(initial=0) == 0, f"{name} at {intensity} changes pixels outside its region"
            # Clearly visible: a weak positive still changes a dozen pixels by 30+ levels (summed over RGB).
            assert (difference[inside] > 30).sum() >= 12, f"{name} at {intensity} barely changes the face"
        assert inside.mean() < 0.35, f"{name}'s region covers {inside.mean():.0%} of the frame: not local"


def test_stronger_intensity_changes_more():
    renderer = FaceRenderer(sample_identity(np.random.default_rng(3)))
    neutral = renderer.canonical(np.zeros(len(ABAW_AUS))).astype(int)
    for index, name in enumerate(ABAW_AUS):
        changes = []
        for intensity in (0.35, 1.0):
            active = np.zeros(len(ABAW_AUS))
            active[index] = intensity
            changes.append(np.abs(renderer.canonical(active).astype(int) - neutral).sum())
        assert changes[1] > changes[0] > 0, name


def test_strengths_hand_values():
    assert strengths([0.0, 0.35, 1.0, 0.5]).tolist() == pytest.approx([0.0, 0.3 + 0.7 * 0.35, 1.0, 0.65])


def test_same_seed_same_pixels_and_other_seed_differs():
    def frame(seed):
        rng = np.random.default_rng(seed)
        renderer = FaceRenderer(sample_identity(rng), 96)
        conditions = renderer.sample_conditions(rng, 5)[2]
        return renderer.render(rng.uniform(0, 1, len(ABAW_AUS)), conditions, rng)

    assert np.array_equal(frame(11), frame(11))
    assert not np.array_equal(frame(11), frame(12))


def test_pose_matrix_rotates_about_the_face_centre():
    identity = sample_identity(np.random.default_rng(0))
    conditions = FrameConditions(angle=90.0, scale=2.0, shift_x=1.0, shift_y=-2.0)
    matrix = pose_matrix(identity, conditions, 224)  # 2 px per unit
    centre = np.array([identity.center_x, identity.center_y]) * 2
    # OpenCV's positive angle turns +x towards -y (counter-clockwise on screen); scale 2; shift in units.
    moved = matrix @ np.array([centre[0] + 10, centre[1], 1.0])
    assert moved == pytest.approx([centre[0] + 2.0, centre[1] - 20 - 4.0], abs=1e-4)  # OpenCV rounds cos(90)


def test_occluders_are_rare_and_never_hide_a_region():
    rng = np.random.default_rng(5)
    renderer = FaceRenderer(sample_identity(rng), 112)
    conditions = renderer.sample_conditions(rng, 3000)
    occluded = [c for c in conditions if c.occluder is not None]
    assert 0.005 < len(occluded) / len(conditions) < 0.05
    for frame in occluded[:20]:
        clean = renderer.render(np.zeros(len(ABAW_AUS)), dataclasses.replace(frame, occluder=None))
        covered = np.abs(renderer.render(np.zeros(len(ABAW_AUS)), frame).astype(int) - clean).sum(-1) > 0
        matrix = pose_matrix(renderer.identity, frame, 112)
        for name, polygons in au_regions(renderer.identity, 112).items():
            region = polygon_mask(transform_polygons(polygons, matrix), 112)
            assert (covered & region).sum() <= 0.4 * region.sum(), name


def test_pose_and_nuisance_stay_moderate():
    rng = np.random.default_rng(9)
    renderer = FaceRenderer(sample_identity(rng), 112)
    conditions = renderer.sample_conditions(rng, 500)
    assert max(abs(c.angle) for c in conditions) < 7
    assert max(abs(c.scale - 1) for c in conditions) < 0.06
    assert max(max(abs(c.shift_x), abs(c.shift_y)) for c in conditions) < 4.5
    assert all(75 <= c.quality <= 95 and 1 <= c.noise <= 4 for c in conditions)
    # Smooth pose: consecutive frames differ much less than the pose's range.
    angles = np.array([c.angle for c in conditions])
    assert np.abs(np.diff(angles)).mean() < 0.5 * angles.std() + 0.6
