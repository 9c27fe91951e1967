"""Face detection on real photos, square crops checked pixel by pixel, and id tracking across frames."""

import pickle

import numpy as np
import pytest
from inference_helpers import ASTRONAUT_FACE, GRACE_HOPPER_FACE, astronaut_rgb, grace_hopper_rgb

from modeling_au_mlt.inference.faces import FaceBox, FaceDetector, IoUTracker, crop_face, square_region


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def assert_plausible(box: FaceBox, truth: dict, offset=(0, 0)):
    centre_x, centre_y = box.x + box.w / 2, box.y + box.h / 2
    expected_x, expected_y = truth["centre"][0] + offset[0], truth["centre"][1] + offset[1]
    assert abs(centre_x - expected_x) < 50 and abs(centre_y - expected_y) < 50, (box, truth)
    assert truth["width"][0] <= box.w <= truth["width"][1], (box, truth)


@pytest.mark.parametrize("photo, truth", [(grace_hopper_rgb, GRACE_HOPPER_FACE), (astronaut_rgb, ASTRONAUT_FACE)])
def test_one_face_found_where_it_is(detector, photo, truth):
    boxes = detector.detect(photo())
    assert len(boxes) == 1
    assert_plausible(boxes[0], truth)


def test_several_faces_largest_first_in_input_pixels(detector):
    canvas = np.full((700, 1200, 3), 128, np.uint8)
    canvas[50:650, 0:512] = grace_hopper_rgb()
    canvas[100:612, 650:1162] = astronaut_rgb()
    boxes = detector.detect(canvas)
    assert len(boxes) == 2
    assert boxes[0].area > boxes[1].area
    assert_plausible(boxes[0], GRACE_HOPPER_FACE, offset=(0, 50))
    assert_plausible(boxes[1], ASTRONAUT_FACE, offset=(650, 100))


def test_large_frames_are_shrunk_for_detection_and_boxes_scaled_back(detector):
    photo = grace_hopper_rgb()
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)  # 1200 x 1024, above detect_size
    (box,) = detector.detect(big)
    assert_plausible(FaceBox(box.x // 2, box.y // 2, box.w // 2, box.h // 2), GRACE_HOPPER_FACE)


def test_no_face_in_a_blank_image(detector):
    assert detector.detect(np.full((240, 320, 3), 200, np.uint8)) == []


def test_detector_survives_pickling_for_spawned_workers(detector):
    copy = pickle.loads(pickle.dumps(detector))
    assert copy.detect(astronaut_rgb()) == detector.detect(astronaut_rgb())


def test_square_crop_with_margin_matches_the_image_region():
    image = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    box = FaceBox(40, 45, 20, 10)  # wide box: the square follows the longer side
    assert square_region(box, margin=0.5) == (30, 30, 40)
    np.testing.assert_array_equal(crop_face(image, box, size=40, margin=0.5), image[30:70, 30:70])


def test_crop_beyond_the_border_is_padded_black_and_stays_centred():
    image = np.full((50, 50, 3), 255, np.uint8)
    crop = crop_face(image, FaceBox(0, 0, 20, 20), size=40, margin=0.5)  # square from -10 to 30
    assert crop.shape == (40, 40, 3)
    assert (crop[:10] == 0).all() and (crop[:, :10] == 0).all()
    assert (crop[10:, 10:] == 255).all()


def test_crop_is_resized_to_the_model_size():
    crop = crop_face(grace_hopper_rgb(), FaceBox(150, 100, 230, 230), size=112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8


def test_iou_by_hand():
    assert FaceBox(0, 0, 10, 10).iou(FaceBox(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert FaceBox(0, 0, 10, 10).iou(FaceBox(20, 20, 5, 5)) == 0.0


def test_tracker_keeps_ids_through_swaps_and_gaps():
    tracker = IoUTracker(min_iou=0.3, max_missed=3)
    left, right = FaceBox(0, 0, 100, 100), FaceBox(300, 0, 80, 80)
    assert tracker.update([left, right]) == [0, 1]
    # Order swapped (the right face grew), both moved a little: ids follow the faces.
    assert tracker.update([FaceBox(305, 2, 110, 110), FaceBox(4, 3, 100, 100)]) == [1, 0]
    assert tracker.update([]) == []
    assert tracker.update([FaceBox(6, 4, 100, 100)]) == [0]  # back after a frame without faces
    assert tracker.update([FaceBox(600, 300, 90, 90)]) == [2]  # a new face gets a new id


def test_tracker_forgets_a_face_missing_longer_than_max_missed():
    tracker = IoUTracker(max_missed=2)
    box = FaceBox(0, 0, 100, 100)
    assert tracker.update([box]) == [0]
    for _ in range(3):
        tracker.update([])
    assert tracker.update([box]) == [1]
