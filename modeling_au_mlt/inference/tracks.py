"""Temporal scoring of a video's tracked faces: per-frame label states kept per face, each track scored whole.

A temporal AU-MLT (`config.temporal_layers > 0`) scores a frame from the label tokens of neighbouring frames
too. Its expensive part, `AUMLTModel.frame_states` (encoder and label decoder), runs once per face crop in the
predictor's batches; `TrackBuffer` keeps each tracked face's states in frame order and, once the track has
ended (the tracker dropped its id, or the video ended), scores the whole track in one call of a scoring
function (the predictor's `AUMLTModel.video_logits`: sliding windows, each frame scored once).

Frames inside a track where the face was not detected become masked positions (`frame_mask` False) rather
than being left out: the frames on either side stay as far apart as they are in the video instead of being
joined as neighbours, and the masked positions are seen by no frame. A gap lasts at most the tracker's
`max_missed` frames, after which the face comes back under a new id.

Memory: a track's states stay until it ends, `num_labels x hidden_size` float32 values per face and frame
(12 x 768 x 4 B = 36 KiB at ViT-B width, about 54 MiB per minute of one face at 25 fps), held on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
import torch

# (frames, labels, hidden) states and a (frames,) bool mask -> (frames, labels) probabilities
TrackScorer = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


@dataclass
class Track:
    """One face's frames so far: their video frame indices, CSV rows and label states `(labels, hidden)`."""

    frames: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    states: list[torch.Tensor] = field(default_factory=list)

    def sequence(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """States `(span, labels, hidden)` from the track's first to last frame, zero where the face was
        missed, the `(span,)` mask of the frames it was seen in, and each row's position in the span."""
        positions = np.asarray(self.frames) - self.frames[0]
        states = self.states[0].new_zeros(positions[-1] + 1, *self.states[0].shape)
        states[positions] = torch.stack(self.states)
        mask = torch.zeros(len(states), dtype=torch.bool)
        mask[positions] = True
        return states, mask, positions


class TrackBuffer:
    """The tracks of one video, each scored by `score` once it has ended."""

    def __init__(self, score: TrackScorer):
        self.score = score
        self.tracks: dict[int, Track] = {}

    def add(self, frame: int, face_ids: list[int], first_row: int, states: torch.Tensor) -> None:
        """Keep the states `(faces, labels, hidden)` of one frame's faces, whose CSV rows start at `first_row`."""
        for offset, (face_id, face_states) in enumerate(zip(face_ids, states)):
            track = self.tracks.setdefault(face_id, Track())
            track.frames.append(frame)
            track.rows.append(first_row + offset)
            track.states.append(face_states)

    def score_ended(self, live: Collection[int], probabilities: list[np.ndarray]) -> None:
        """Score every track whose id is not in `live` and write each of its rows into `probabilities`."""
        for face_id in [face_id for face_id in self.tracks if face_id not in live]:
            track = self.tracks.pop(face_id)
            states, mask, positions = track.sequence()
            scores = self.score(states, mask)
            for row, position in zip(track.rows, positions):
                probabilities[row] = scores[position]
