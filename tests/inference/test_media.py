"""Reading inputs: images in RGB, folders in name order, videos with timestamps, clear errors."""

import numpy as np
import pytest
from inference_helpers import write_video
from PIL import Image

from modeling_au_mlt.inference.media import MediaError, open_media, read_image


def save_solid(path, rgb, size=(8, 6)):
    Image.new("RGB", size, rgb).save(path)
    return path


def test_image_is_read_as_rgb(tmp_path):
    source = open_media(save_solid(tmp_path / "red.png", (255, 0, 0)))
    assert (source.kind, source.num_frames, source.stem) == ("image", 1, "red")
    (frame,) = list(source)
    assert frame.index == 0 and frame.timestamp is None
    assert frame.image.shape == (6, 8, 3)
    assert tuple(frame.image[0, 0]) == (255, 0, 0)


def test_folder_frames_in_name_order_and_a_damaged_image_is_flagged_not_fatal(tmp_path):
    folder = tmp_path / "clip01"
    folder.mkdir()
    save_solid(folder / "00002.png", (0, 255, 0))
    save_solid(folder / "00001.png", (255, 0, 0))
    (folder / "00003.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image")
    source = open_media(folder)
    assert (source.kind, source.num_frames, source.stem) == ("folder", 3, "clip01")
    frames = list(source)
    assert [tuple(f.image[0, 0]) for f in frames[:2]] == [(255, 0, 0), (0, 255, 0)]
    assert frames[2].image is None and "00003.jpg" in frames[2].error


def test_video_frames_with_increasing_timestamps(tmp_path):
    levels = [0, 60, 120, 180, 240]
    path = write_video(tmp_path / "v.avi", [np.full((48, 64, 3), v, np.uint8) for v in levels], fps=25)
    source = open_media(path)
    assert (source.kind, source.num_frames, source.fps) == ("video", 5, 25.0)
    frames = list(source)
    assert [f.index for f in frames] == list(range(5))
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16])
    assert [round(float(f.image.mean())) for f in frames] == pytest.approx(levels, abs=3)  # MJPG is lossy


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("corrupt.mp4", b"\x00garbage" * 100, "cannot open as a video"),
        ("empty.avi", b"", "cannot open as a video"),
        ("broken.jpg", b"\xff\xd8 not really", "not a decodable image"),
        ("notes.txt", b"hello", "unsupported format .txt"),
    ],
)
def test_bad_files_raise_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message) as error:
        open_media(path)
    assert str(path) in str(error.value)


def test_missing_path_and_folder_without_images(tmp_path):
    with pytest.raises(MediaError, match="no such file or folder"):
        open_media(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="holds no image file"):
        open_media(tmp_path / "empty")


def test_read_image_names_the_file(tmp_path):
    with pytest.raises(MediaError, match="cannot read"):
        read_image(tmp_path / "nothing.png")
