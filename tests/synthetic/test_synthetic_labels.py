"""Synthetic label sequences: Aff-Wild2 rates, expression co-occurrence, temporal structure, intensities."""

import numpy as np
import pytest

from modeling_au_mlt.configuration_au_mlt import ABAW_AUS
from modeling_au_mlt.synthetic.labels import (
    EXPRESSIONS,
    MIN_INTENSITY,
    TARGET_RATES,
    background_duties,
    expression_rates,
    sample_video,
)

AU = {name: index for index, name in enumerate(ABAW_AUS)}


@pytest.fixture(scope="module")
def sequences():
    """200 videos x 200 frames (40k frames) of labels and intensities."""
    rng = np.random.default_rng(2024)
    videos = [sample_video(rng, 200) for _ in range(200)]
    return [v[0] for v in videos], [v[1] for v in videos]


def test_positive_rates_match_aff_wild2(sequences):
    labels = np.concatenate(sequences[0])
    # Aff-Wild2 training positive rates (ABAW2 AU track), typed in independently of the module's table.
    facts = [0.119, 0.051, 0.160, 0.265, 0.399, 0.345, 0.243, 0.028, 0.031, 0.028, 0.628, 0.076]
    for name, target, rate in zip(ABAW_AUS, facts, labels.mean(axis=0)):
        # Runs make frames correlated: ~4 standard errors of a 40k-frame estimate.
        assert abs(rate - target) <= 0.012 + 0.06 * target, f"{name}: rate {rate:.3f}, target {target}"


def test_background_duties_solve_the_or_of_two_sources():
    e, n = expression_rates(), background_duties()
    # Hand check of one expression share: AU1 comes from surprise (always) and sadness (70 %).
    assert e[AU["AU1"]] == pytest.approx(0.04 * 1.0 + 0.025 * 0.7)
    for name in ABAW_AUS:
        if name not in ("AU12", "AU15", "AU24", "AU25"):  # compensated for their mutual exclusion
            assert 1 - (1 - e[AU[name]]) * (1 - n[AU[name]]) == pytest.approx(TARGET_RATES[name])
    assert np.all((n >= 0) & (n < 1))


def test_expression_prototypes_co_occur(sequences):
    labels = np.concatenate(sequences[0]).astype(bool)

    def given(a, b):
        return labels[labels[:, AU[b]], AU[a]].mean(), labels[~labels[:, AU[b]], AU[a]].mean()

    for a, b in (("AU6", "AU12"), ("AU2", "AU1"), ("AU26", "AU2"), ("AU15", "AU4"), ("AU23", "AU7")):
        with_b, without_b = given(a, b)
        assert with_b > 2 * without_b, f"P({a}|{b})={with_b:.3f} vs P({a}|not {b})={without_b:.3f}"
    for a, b in (("AU12", "AU15"), ("AU24", "AU25")):
        both = (labels[:, AU[a]] & labels[:, AU[b]]).mean()
        assert both < 0.25 * labels[:, AU[a]].mean() * labels[:, AU[b]].mean(), (a, b)  # far rarer than independent


def test_labels_are_temporally_smooth(sequences):
    for name in ABAW_AUS:
        runs = []
        for labels in sequences[0]:
            column = np.concatenate([[0], labels[:, AU[name]], [0]])
            edges = np.flatnonzero(np.diff(column))
            runs += (edges[1::2] - edges[::2]).tolist()
        assert np.mean(runs) >= 5, f"{name}: mean positive run {np.mean(runs):.1f} frames"


def test_intensities_zero_when_off_and_visible_when_on(sequences):
    labels, intensity = np.concatenate(sequences[0]), np.concatenate(sequences[1])
    assert labels.dtype == np.int8 and set(np.unique(labels)) == {0, 1}
    assert np.all(intensity[labels == 0] == 0)
    on = intensity[labels == 1]
    assert on.min() >= MIN_INTENSITY and on.max() <= 1
    assert (on < 0.5).mean() > 0.1 and (on > 0.9).mean() > 0.05  # subtle and strong positives both occur


def test_runs_have_onset_apex_offset(sequences):
    """In long runs the first and last frames are weaker than the run's peak."""
    ramps, long_runs = 0, 0
    for labels, intensity in zip(*sequences):
        for index in range(len(ABAW_AUS)):
            column = np.concatenate([[0], labels[:, index], [0]])
            edges = np.flatnonzero(np.diff(column))
            for start, stop in zip(edges[::2], edges[1::2]):
                if stop - start >= 12 and start > 0 and stop < len(labels):
                    long_runs += 1
                    run = intensity[start:stop, index]
                    ramps += run[0] < run.max() and run[-1] < run.max()
    assert long_runs > 100 and ramps / long_runs > 0.9


def test_same_seed_same_sequence():
    first, second = sample_video(np.random.default_rng(5), 300), sample_video(np.random.default_rng(5), 300)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], sample_video(np.random.default_rng(6), 300)[0])


def test_prototype_table_is_consistent():
    assert sum(e.share for e in EXPRESSIONS) < 1
    assert all(set(e.aus) <= set(ABAW_AUS) for e in EXPRESSIONS)
