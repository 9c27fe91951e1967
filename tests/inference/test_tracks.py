"""TrackBuffer by hand: states kept per face id, missed frames as masked positions, a track scored once it ends
and its scores written to its own rows."""

import numpy as np
import torch

from modeling_au_mlt.inference.tracks import TrackBuffer


def recording_scorer(calls):
    """A scorer that records its inputs and scores each label with its first state value (0 where masked)."""

    def score(states, mask):
        calls.append((states.clone(), mask.clone()))
        return states[:, :, 0].numpy() * mask.numpy()[:, None]

    return score


def face_states(*values):
    """`(faces, labels=2, hidden=3)` states filled with one value per face."""
    return torch.tensor(values, dtype=torch.float32)[:, None, None].expand(-1, 2, 3).clone()


def test_missed_frames_are_masked_and_each_track_scored_once_when_it_ends():
    calls = []
    buffer = TrackBuffer(recording_scorer(calls))
    probabilities = [np.full(2, np.nan) for _ in range(6)]
    buffer.add(frame=0, face_ids=[0, 1], first_row=0, states=face_states(1.0, 5.0))
    buffer.add(frame=1, face_ids=[1], first_row=2, states=face_states(6.0))
    buffer.add(frame=3, face_ids=[0, 1], first_row=3, states=face_states(2.0, 7.0))
    buffer.score_ended(live={0, 1}, probabilities=probabilities)
    assert calls == []
    buffer.score_ended(live={1}, probabilities=probabilities)
    ((states, mask),) = calls
    assert mask.tolist() == [True, False, False, True]  # face 0 was missed in frames 1 and 2
    assert states[:, 0, 0].tolist() == [1.0, 0.0, 0.0, 2.0]
    np.testing.assert_array_equal(np.array(probabilities)[[0, 3]], [[1.0, 1.0], [2.0, 2.0]])
    assert np.isnan(np.array(probabilities)[[1, 2, 4]]).all()
    buffer.score_ended(live=(), probabilities=probabilities)
    assert calls[1][1].tolist() == [True, True, False, True]
    np.testing.assert_array_equal(np.array(probabilities)[[1, 2, 4]], [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]])
    assert buffer.tracks == {}
