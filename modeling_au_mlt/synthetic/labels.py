"""Synthetic per-frame AU labels and intensities with Aff-Wild2's positive rates and realistic structure.

A video's AUs come from two sources, OR-ed frame by frame:

1. Expressions. A Markov chain over neutral and five prototypes (`EXPRESSIONS`): smile (AU6+AU12,
   often AU25), surprise (AU1+AU2+AU25, mostly AU26), sadness (AU1+AU4+AU15), anger (AU4+AU7, sometimes
   AU23 or AU24) and disgust (AU10, sometimes AU4). Each prototype occupies a set share of the frames in
   episodes of geometric length; an episode draws which of its optional AUs it includes.
2. Background activity. Per AU, a two-state Markov chain (stationary start) whose duty is calibrated so
   that the AU's overall positive rate matches `TARGET_RATES` (Aff-Wild2's ABAW2 training set):
   `1 - r_i = (1 - e_i)(1 - n_i)` with `e_i` the expressions' share of AU i.

Every active run (an episode or a background run) has an apex intensity uniform in [0.35, 1] and a
ramp of up to 4 frames at each end (onset, apex, offset); the intensity never falls below
`MIN_INTENSITY` while the AU is on and is exactly 0 while it is off. Two pairs are made nearly exclusive:
AU12 / AU15 (lip corners pulled up / down) and AU25 / AU24 (lips parted / pressed together): background
activity of one is suppressed (except for 10 % of runs) while the other is on.
"""

from dataclasses import dataclass

import numpy as np

from ..configuration_au_mlt import ABAW_AUS

TARGET_RATES = dict(
    zip(ABAW_AUS, (0.119, 0.051, 0.160, 0.265, 0.399, 0.345, 0.243, 0.028, 0.031, 0.028, 0.628, 0.076))
)
MIN_INTENSITY = 0.35
RAMP_FRAMES = 4
BACKGROUND_RUN_LENGTH = {**{name: 10.0 for name in ABAW_AUS}, "AU7": 14.0, "AU25": 16.0}
# (first, second): first's background pauses while second's expressions are on; second's background pauses
# while first is on from any source. Lip corners up vs down; lips parted vs pressed together.
EXCLUSIVE_PAIRS = (("AU12", "AU15"), ("AU25", "AU24"))
EXCLUSION_LEAK = 0.1  # share of background runs allowed to overlap the other AU of the pair


@dataclass(frozen=True)
class Expression:
    """A prototype: its share of all frames, mean episode length (frames) and AU inclusion probabilities."""

    name: str
    share: float
    mean_length: float
    aus: dict


EXPRESSIONS = (
    Expression("smile", 0.20, 30.0, {"AU6": 0.8, "AU12": 1.0, "AU25": 0.6}),
    Expression("surprise", 0.04, 15.0, {"AU1": 1.0, "AU2": 1.0, "AU25": 1.0, "AU26": 0.9}),
    Expression("sadness", 0.025, 30.0, {"AU1": 0.7, "AU4": 1.0, "AU15": 0.8}),
    Expression("anger", 0.05, 20.0, {"AU4": 1.0, "AU7": 1.0, "AU23": 0.4, "AU24": 0.35}),
    Expression("disgust", 0.08, 15.0, {"AU10": 1.0, "AU4": 0.3}),
)


NEUTRAL = 0  # state of the expression chain between episodes; state k >= 1 is EXPRESSIONS[k - 1]


def expression_rates(expressions=EXPRESSIONS) -> np.ndarray:
    """(12,) share of frames in which expressions alone switch each AU on."""
    return np.array(
        [sum(expression.share * expression.aus.get(name, 0.0) for expression in expressions) for name in ABAW_AUS]
    )


def background_duties(rates: dict = TARGET_RATES, expressions=EXPRESSIONS) -> np.ndarray:
    """(12,) duty of each AU's background chain so that the OR of both sources hits `rates`."""
    from_expressions = expression_rates(expressions)
    target = np.array([rates[name] for name in ABAW_AUS])
    too_high = from_expressions > target
    if np.any(too_high):
        raise ValueError(f"expressions alone exceed the target rates for {np.array(ABAW_AUS)[too_high].tolist()}")
    duty = 1 - (1 - target) / (1 - from_expressions)
    # Suppression while the other AU of the pair is on removes part of the background runs: compensate.
    for first, second in _exclusive_columns():
        blocked = {
            first: from_expressions[second] / (1 - from_expressions[first]),
            second: target[first] / (1 - from_expressions[second]),
        }
        for index, share in blocked.items():
            duty[index] /= 1 - (1 - EXCLUSION_LEAK) * share
    return duty


def _exclusive_columns() -> list[tuple[int, int]]:
    """`EXCLUSIVE_PAIRS` as (first, second) column indices in ABAW order."""
    return [(ABAW_AUS.index(first), ABAW_AUS.index(second)) for first, second in EXCLUSIVE_PAIRS]


def sample_video(rng: np.random.Generator, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (num_frames, 12) int8 in {0, 1} and intensities (num_frames, 12) float32 (0 exactly when off)."""
    intensity = np.zeros((num_frames, len(ABAW_AUS)), np.float32)
    for start, stop, expression in _expression_episodes(rng, num_frames):
        for name, probability in expression.aus.items():
            if rng.random() < probability:
                column = ABAW_AUS.index(name)
                intensity[start:stop, column] = _envelope(rng, stop - start)
    background = np.zeros_like(intensity)
    for column, (name, duty) in enumerate(zip(ABAW_AUS, background_duties())):
        for start, stop in _on_runs(rng, num_frames, duty, BACKGROUND_RUN_LENGTH[name]):
            background[start:stop, column] = _envelope(rng, stop - start)
    for first, second in _exclusive_columns():
        _suppress(rng, background[:, first], intensity[:, second] > 0)
        _suppress(rng, background[:, second], np.maximum(intensity[:, first], background[:, first]) > 0)
    intensity = np.maximum(intensity, background)
    return (intensity > 0).astype(np.int8), intensity


def _expression_episodes(rng: np.random.Generator, num_frames: int):
    """(start, stop, Expression) runs of a stationary neutral/expression chain over `num_frames` frames."""
    shares = np.array([expression.share for expression in EXPRESSIONS])
    lengths = np.array([expression.mean_length for expression in EXPRESSIONS])
    neutral = 1 - shares.sum()
    entry = shares / lengths  # flow into each expression, per frame, at stationarity
    leave_neutral = entry.sum() / neutral  # neutral's exit probability; mean neutral run = 1 / that
    state = rng.choice(len(EXPRESSIONS) + 1, p=np.concatenate([[neutral], shares]))
    frame = 0
    while frame < num_frames:
        if state == NEUTRAL:
            frame += int(rng.geometric(leave_neutral))
            state = 1 + rng.choice(len(EXPRESSIONS), p=entry / entry.sum())
        else:
            stop = min(num_frames, frame + int(rng.geometric(1 / lengths[state - 1])))
            yield frame, stop, EXPRESSIONS[state - 1]
            frame, state = stop, NEUTRAL


def _on_runs(rng: np.random.Generator, num_frames: int, duty: float, mean_on: float):
    """(start, stop) on-runs of a stationary two-state chain with on-share `duty` and mean on-run `mean_on`."""
    if duty <= 0:
        return
    start_probability = min(1.0, duty / (mean_on * (1 - duty)))  # of an on-run, per off frame
    on, frame = rng.random() < duty, 0
    while frame < num_frames:
        length = int(rng.geometric(1 / mean_on if on else start_probability))
        if on:
            yield frame, min(num_frames, frame + length)
        frame, on = frame + length, not on


def _envelope(rng: np.random.Generator, length: int) -> np.ndarray:
    """(length,) onset-apex-offset intensity of one run: ramps of up to 4 frames, never below 0.35."""
    apex = rng.uniform(MIN_INTENSITY, 1.0)
    ramp = min(RAMP_FRAMES, length // 3)
    frame = np.arange(length)
    rise = np.minimum((frame + 1) / (ramp + 1), (length - frame) / (ramp + 1))
    return np.maximum(MIN_INTENSITY, apex * np.minimum(1.0, rise)).astype(np.float32)


def _suppress(rng: np.random.Generator, background: np.ndarray, blocker_on: np.ndarray) -> None:
    """Zero `background` (in place) where `blocker_on`, except in a random 10 % of its runs."""
    on = background > 0
    starts = on & ~np.concatenate([[False], on[:-1]])
    if not starts.any():
        return
    keep = rng.random(int(starts.sum())) < EXCLUSION_LEAK
    run_id = np.maximum(np.cumsum(starts) - 1, 0)
    background[on & blocker_on & ~keep[run_id]] = 0.0
