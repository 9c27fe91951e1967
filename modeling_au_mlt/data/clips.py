"""Clips of consecutive frames of one video, for training and scoring a temporal AU-MLT.

A clip covers `window` consecutive frame numbers of one video (a split's `video_id` and `frame` columns). A frame
number without a row is a gap: `frame_mask` False, labels -1, pixels 0. Every clip has exactly `window` positions
(a video shorter than the window is padded with gaps), so the Trainer stacks and concatenates clips of one shape.

- `training_clips`: a fixed tiling of each video's frame numbers, a clip every `window // 2` frames and the last
  one ending on the video's last frame. The clips and their order depend on the data alone, so the Trainer's
  seeded sampler and its mid-epoch resume are exact. Every frame is trained on in about two clips per epoch.
- `evaluation_clips`: the windows of `sliding_windows` over each video's frame numbers. A position is scored when
  it holds a row and lies in its window's scored range, so every row is scored exactly once; unscored positions
  get labels -1, which the loss and the metric ignore, and `ClipIndex.per_row` turns predictions
  `(clips, T, L)` back into the split's rows `(N, L)`.

`ClipDataset` runs a frame transform of `transforms.py` on a clip's rows with the clip's key as every frame's
sample key: each frame's generator starts from the same (seed, epoch, clip key), so all frames of a clip get the
same zoom, rotation, flip and colour jitter, and a resumed run sees the draws of an uninterrupted one.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..configuration_au_mlt import NOT_ANNOTATED
from ..modeling_au_mlt import sliding_windows
from .transforms import KEY_COLUMN, sample_keys

logger = logging.getLogger(__name__)

# (start, stop, score_start, score_stop) in frame offsets from a video's first frame, as `sliding_windows` gives.
Window = tuple[int, int, int, int]


@dataclass(frozen=True)
class ClipIndex:
    """Clips over the rows of one split.

    Attributes:
        rows: `(C, T)` int64, the row of each clip position, -1 for gaps.
        scored: `(C, T)` bool, the positions whose logits and labels count (rows only).
        keys: `(C,)` int64, each clip's key (a hash of its video id and first frame number), seeding its draws.
        num_rows: rows of the split.
    """

    rows: np.ndarray
    scored: np.ndarray
    keys: np.ndarray
    num_rows: int

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """Values `(N, ...)` of the split's rows from per-position values `(C, T, ...)`, each row's from the
        position scoring it; rows no position scores hold unspecified values (none for `evaluation_clips`)."""
        values = np.asarray(values)
        if values.shape[:2] != self.rows.shape:
            raise ValueError(f"per_row: expected values of shape {self.rows.shape} + (...), got {values.shape}")
        rows = np.empty((self.num_rows, *values.shape[2:]), dtype=values.dtype)
        rows[self.rows[self.scored]] = values[self.scored]
        return rows


def video_rows(split, split_name: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per video (by id): its id, its frame numbers in increasing order and the rows holding them."""
    missing = {"video_id", "frame"} - set(split.column_names)
    if missing:
        raise ValueError(
            f"clips of the {split_name} split need 'video_id' and 'frame' columns; missing {sorted(missing)}, "
            f"it has {split.column_names}"
        )
    columns = split.select_columns(["video_id", "frame"])[:]
    unidentified = sum(video is None or video == "" for video in columns["video_id"])
    if unidentified:
        raise ValueError(f"{split_name} split: {unidentified} rows have no 'video_id'; clips need one per row")
    frames = np.asarray(columns["frame"])
    if not len(frames):
        return []
    if not np.issubdtype(frames.dtype, np.integer):
        raise ValueError(f"{split_name} split: 'frame' holds {frames.dtype} values; clips need frame numbers")
    ids, videos = np.unique(np.asarray(columns["video_id"], dtype=str), return_inverse=True)
    order = np.lexsort((frames, videos))  # rows by video, then frame number
    repeated = (videos[order][1:] == videos[order][:-1]) & (frames[order][1:] == frames[order][:-1])
    if repeated.any():
        first = order[1:][repeated][0]
        raise ValueError(
            f"{split_name} split: {int(repeated.sum())} rows repeat a (video_id, frame) pair, e.g. "
            f"({ids[videos[first]]!r}, {int(frames[first])}); a clip position holds one row"
        )
    bounds = np.flatnonzero(np.r_[True, videos[order][1:] != videos[order][:-1], True])
    return [
        (str(ids[videos[order[start]]]), frames[order[start:stop]], order[start:stop])
        for start, stop in zip(bounds[:-1], bounds[1:])
    ]


def tiling(span: int, window: int) -> list[Window]:
    """Training windows over `span` frame numbers: one every `window // 2`, the last ending on the last frame;
    each scores all of its frames."""
    last = max(span - window, 0)
    starts = sorted({*range(0, last + 1, max(window // 2, 1)), last})
    return [(start, start + window, start, start + window) for start in starts]


def clip_index(split, split_name: str, window: int, windows_of: Callable[[int], list[Window]]) -> ClipIndex:
    """Clips of `window` positions over `split`: `windows_of(span)` places them on each video's `span` frame
    numbers (its first to its last frame). Windows that score no row are skipped, counted and logged."""
    rows, scored, video_ids, first_frames = [], [], [], []
    videos, skipped = video_rows(split, split_name), 0
    for video_id, frames, video_row in videos:
        slots = np.full(int(frames[-1] - frames[0]) + window, -1, dtype=np.int64)  # row per frame offset, padded
        slots[frames - frames[0]] = video_row
        for start, _, score_start, score_stop in windows_of(int(frames[-1] - frames[0]) + 1):
            clip_rows = slots[start : start + window]  # (T,); the window's frames, then padding
            offsets = np.arange(start, start + window)
            clip_scored = (clip_rows >= 0) & (offsets >= score_start) & (offsets < score_stop)
            if not clip_scored.any():
                skipped += 1
                continue
            rows.append(clip_rows)
            scored.append(clip_scored)
            video_ids.append(video_id)
            first_frames.append(int(frames[0]) + start)
    keys = sample_keys({"video_id": video_ids, "frame": first_frames})
    index = ClipIndex(
        rows=np.array(rows, dtype=np.int64).reshape(-1, window),
        scored=np.array(scored, dtype=bool).reshape(-1, window),
        keys=np.array(keys, dtype=np.int64),
        num_rows=len(split),
    )
    gaps = int((index.rows < 0).sum())
    logger.info(
        "%s split: %d clips of %d frames over %d videos (%d rows); %d of %d positions are gaps; %d windows without "
        "a row to score skipped",
        split_name,
        len(index.keys),
        window,
        len(videos),
        len(split),
        gaps,
        index.rows.size,
        skipped,
    )
    return index


def training_clips(split, window: int, split_name: str = "train") -> ClipIndex:
    """The fixed training tiling of `split` (module docstring): every position holding a row is scored."""
    return clip_index(split, split_name, window, lambda span: tiling(span, window))


def evaluation_clips(split, window: int, causal: bool, split_name: str) -> ClipIndex:
    """The `sliding_windows` clips of `split`, scoring every row exactly once (module docstring)."""
    index = clip_index(split, split_name, window, lambda span: sliding_windows(span, window, causal))
    counts = np.bincount(index.rows[index.scored], minlength=index.num_rows)
    if (counts != 1).any():  # sliding_windows' scored ranges must partition each video
        raise ValueError(f"{split_name} split: evaluation clips score some rows {sorted(set(counts.tolist()))} times")
    return index


class ClipDataset(Dataset):
    """Clips of an untransformed split (columns `image`, `labels`), each as `pixel_values` `(T, 3, S, S)`,
    `labels` `(T, L)` (-1 at gaps and unscored positions), `frame_mask` `(T,)` and its `sample_key`.

    `transform` is a frame transform of `transforms.py` (`TrainTransform` or `EvalTransform`); it gets the clip's
    rows with the clip's key as every row's `sample_key`, so a training clip has one augmentation draw.
    """

    def __init__(self, split, index: ClipIndex, transform) -> None:
        self.frames = split.select_columns(["image", "labels"])
        self.index = index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index.keys)

    def __getitem__(self, item: int) -> dict:
        rows, key = self.index.rows[item], int(self.index.keys[item])
        batch = self.frames[rows[rows >= 0].tolist()]
        present, scored = torch.from_numpy(rows >= 0), torch.from_numpy(self.index.scored[item])  # (T,)
        frames = self.transform({**batch, KEY_COLUMN: [key] * int(present.sum())})
        pixels = torch.stack(frames["pixel_values"])  # (P, 3, S, S), the present frames
        pixel_values = pixels.new_zeros((len(rows), *pixels.shape[1:]))
        pixel_values[present] = pixels
        frame_labels = torch.stack([torch.as_tensor(row, dtype=torch.float32) for row in frames["labels"]])
        labels = torch.full((len(rows), frame_labels.shape[1]), float(NOT_ANNOTATED))
        labels[scored] = frame_labels[scored[present]]
        return {
            "pixel_values": pixel_values,
            "labels": labels,
            "frame_mask": present,
            KEY_COLUMN: key,
        }


class ClipCollator:
    """Stacks clips into `pixel_values` `(B, T, 3, S, S)`, `labels` `(B, T, L)` and `frame_mask` `(B, T)`."""

    def __call__(self, clips: list[dict]) -> dict[str, torch.Tensor]:
        return {name: torch.stack([clip[name] for clip in clips]) for name in ("pixel_values", "labels", "frame_mask")}
