"""Clips of consecutive frames: one video each, gaps masked, every evaluation row scored once, one draw per clip."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from tiny_au_data import AU_NAMES, tiny_split
from transformers import ViTImageProcessor

from modeling_au_mlt.data.clips import ClipCollator, ClipDataset, evaluation_clips, tiling, training_clips
from modeling_au_mlt.data.conversion import features_for
from modeling_au_mlt.data.transforms import KEY_COLUMN, AugmentationConfig, EpochState, EvalTransform, TrainTransform
from modeling_au_mlt.modeling_au_mlt import sliding_windows

WINDOW = 4


@pytest.fixture
def processor():
    return ViTImageProcessor(size={"height": 32, "width": 32})


@pytest.fixture(scope="module")
def gappy_split() -> Dataset:
    """Three videos of 11, 3 and 9 frames with missing frames, rows shuffled across videos."""
    split = tiny_split(3, 11, 0, "train")
    frames, videos = np.array(split["frame"]), np.array(split["video_id"])
    keep = ~(((videos == "train0") & np.isin(frames, [4, 5, 9])) | ((videos == "train1") & (frames > 3)))
    keep &= ~((videos == "train2") & ((frames < 3) | (frames == 7)))  # starts at frame 3
    rows = np.flatnonzero(keep)
    return split.select(np.random.default_rng(0).permutation(rows))


def positions(split, index) -> tuple[np.ndarray, np.ndarray]:
    """Video id and frame number of each clip position `(C, T)` (None and -1 at gaps)."""
    videos, frames = np.array(split["video_id"], dtype=object), np.array(split["frame"])
    present = index.rows >= 0
    return np.where(present, videos[index.rows], None), np.where(present, frames[index.rows], -1)


@pytest.mark.parametrize("causal", [False, True])
def test_clips_never_cross_videos_and_hold_consecutive_frame_numbers(gappy_split, causal):
    for index in (training_clips(gappy_split, WINDOW), evaluation_clips(gappy_split, WINDOW, causal, "validation")):
        videos, frames = positions(gappy_split, index)
        assert index.rows.shape[1] == WINDOW
        for clip_videos, clip_frames in zip(videos, frames):
            present = clip_frames >= 0
            assert len(set(clip_videos[present])) == 1
            offsets = np.flatnonzero(present)
            # position p holds frame number first + p: gaps are positions, not skipped
            assert np.all(clip_frames[present] - offsets == clip_frames[present][0] - offsets[0])


def test_training_tiling_covers_every_row_with_half_window_steps_and_pads_short_videos(gappy_split):
    assert tiling(11, 4) == [(0, 4, 0, 4), (2, 6, 2, 6), (4, 8, 4, 8), (6, 10, 6, 10), (7, 11, 7, 11)]
    assert tiling(3, 4) == [(0, 4, 0, 4)]
    index = training_clips(gappy_split, WINDOW)
    assert set(index.rows[index.scored]) == set(range(len(gappy_split)))
    assert np.array_equal(index.scored, index.rows >= 0)
    videos, frames = positions(gappy_split, index)
    short = [clip for clip, clip_videos in enumerate(videos) if "train1" in clip_videos]
    assert len(short) == 1 and list(frames[short[0]]) == [1, 2, 3, -1]  # 3 frames, padded with a gap
    # train0 without frames 4, 5 and 9: the clip of frames 3..6 holds two gaps
    assert [3, -1, -1, 6] in frames.tolist()


@pytest.mark.parametrize("causal", [False, True])
def test_evaluation_clips_score_every_row_once_and_map_back(gappy_split, causal, processor):
    index = evaluation_clips(gappy_split, WINDOW, causal, "validation")
    assert np.array_equal(np.bincount(index.rows[index.scored]), np.ones(len(gappy_split)))
    assert np.array_equal(index.per_row(index.rows), np.arange(len(gappy_split)))
    # the windows of sliding_windows over each video's frame numbers: train2 spans frames 3..11
    videos, frames = positions(gappy_split, index)
    first = (frames >= 0).argmax(axis=1)  # (C,) each clip's first present position
    first_frames = frames[np.arange(len(frames)), first] - first  # (C,) frame number of each clip's position 0
    starts = [int(start) - 3 for start, clip_videos in zip(first_frames, videos) if "train2" in clip_videos]
    assert starts == [start for start, _, _, _ in sliding_windows(9, WINDOW, causal)]
    clip_labels = np.stack(
        [clip["labels"].numpy() for clip in ClipDataset(gappy_split, index, EvalTransform(processor))]
    )
    np.testing.assert_array_equal(index.per_row(clip_labels), np.array(gappy_split["labels"], dtype=np.float32))
    unscored = (index.rows >= 0) & ~index.scored
    assert (clip_labels[unscored] == -1).all() and unscored.any()


def test_gaps_have_false_frame_mask_unannotated_labels_and_zero_pixels(gappy_split, processor):
    index = training_clips(gappy_split, WINDOW)
    dataset = ClipDataset(gappy_split, index, EvalTransform(processor))
    batch = ClipCollator()([dataset[clip] for clip in range(len(dataset))])
    assert batch["pixel_values"].shape == (len(dataset), WINDOW, 3, 32, 32)
    assert batch["labels"].shape == (len(dataset), WINDOW, len(AU_NAMES))
    gaps = torch.from_numpy(index.rows < 0)
    assert torch.equal(batch["frame_mask"], ~gaps) and gaps.any()
    assert (batch["labels"][gaps] == -1).all() and (batch["pixel_values"][gaps] == 0).all()
    # a present frame holds its row's image, as the frame transform gives it
    clip, position = np.argwhere(index.rows >= 0)[0]
    row = int(index.rows[clip, position])
    expected = EvalTransform(processor)(gappy_split[row : row + 1])["pixel_values"][0]
    torch.testing.assert_close(batch["pixel_values"][clip, position], expected)


def constant_video(frames: int) -> Dataset:
    """One video whose frames are all the same image."""
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    rows = {"image": [image] * frames, "labels": [[1.0, 0.0, -1.0]] * frames, "video_id": ["v"] * frames}
    return Dataset.from_dict(rows | {"frame": list(range(frames))}, features=features_for(AU_NAMES))


def test_augmentation_is_one_draw_per_clip_new_each_epoch_and_keyed_by_the_clip(processor):
    split = constant_video(6)
    epoch = EpochState()
    config = AugmentationConfig(color_jitter=0.3, label_smoothing=0.1)
    dataset = ClipDataset(split, training_clips(split, WINDOW), TrainTransform(processor, config, 7, epoch))
    first = dataset[0]
    assert all(torch.equal(frame, first["pixel_values"][0]) for frame in first["pixel_values"][1:])
    plain = EvalTransform(processor)(split[:1])["pixel_values"][0]
    assert not torch.allclose(first["pixel_values"][0], plain)  # augmented
    assert not torch.equal(dataset[1]["pixel_values"][0], first["pixel_values"][0])  # each clip its own draw
    np.testing.assert_allclose(first["labels"][0].numpy(), [0.95, 0.05, -1.0])  # smoothed, -1 kept
    epoch.value = 1
    assert not torch.equal(dataset[0]["pixel_values"][0], first["pixel_values"][0])
    epoch.value = 0
    # the draw is keyed by (seed, epoch, clip key): a fresh dataset over reordered rows gives the same clip
    shuffled = split.select([3, 0, 5, 1, 4, 2])
    again = ClipDataset(shuffled, training_clips(shuffled, WINDOW), TrainTransform(processor, config, 7, EpochState()))
    assert again[0][KEY_COLUMN] == first[KEY_COLUMN]
    assert torch.equal(again[0]["pixel_values"], first["pixel_values"])


def test_splits_that_cannot_make_clips_are_named(gappy_split):
    with pytest.raises(ValueError, match="clips of the validation split need 'video_id' and 'frame' columns"):
        training_clips(gappy_split.remove_columns("video_id"), WINDOW, "validation")
    repeated = gappy_split.select([0, 1, 0])
    with pytest.raises(ValueError, match=r"train split: 1 rows repeat a \(video_id, frame\) pair"):
        training_clips(repeated, WINDOW)
    unnamed = gappy_split.map(lambda row, index: {"video_id": "" if index < 2 else row["video_id"]}, with_indices=True)
    with pytest.raises(ValueError, match="train split: 2 rows have no 'video_id'"):
        training_clips(unnamed, WINDOW)
