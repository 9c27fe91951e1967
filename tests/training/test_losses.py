"""Losses against hand computations: weights from label rates, weighted BCE, soft Dice, -1 masking."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_au_mlt.training.losses import au_loss, label_weights, positive_rates

LOGITS = [[0.0, 2.0], [1.0, -1.0]]
LABELS = [[1.0, -1.0], [0.0, 1.0]]  # entry (0, 1) is not annotated


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def bce(x: float, y: float, pos_weight: float = 1.0) -> float:
    return -(pos_weight * y * math.log(sigmoid(x)) + (1 - y) * math.log(1 - sigmoid(x)))


def soft_dice(pairs: list[tuple[float, float]]) -> float:
    """1 - (2 sum(p y) + 1) / (sum(p^2) + sum(y^2) + 1) over (probability, label) pairs."""
    overlap = 2 * sum(p * y for p, y in pairs) + 1
    return 1 - overlap / (sum(p * p for p, _ in pairs) + sum(y * y for _, y in pairs) + 1)


def test_positive_rates_ignore_unannotated_entries():
    labels = np.array([[1, -1], [0, 1], [1, 0], [-1, 0]])
    np.testing.assert_allclose(positive_rates(labels), [2 / 3, 1 / 3])


def test_frequency_weights_follow_the_inverse_rate_formula():
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 0], [-1, -1]])  # rates 0.5 and 0.25
    inverse = np.array([2.0, 4.0])
    expected = 2 * inverse / inverse.sum()
    np.testing.assert_allclose(label_weights(labels, "frequency").numpy(), expected, rtol=1e-6)
    assert label_weights(labels, "frequency").sum().item() == pytest.approx(2.0)


def test_pos_weight_and_none_weights():
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 0], [-1, 1]])  # AU0: 2 pos 2 neg; AU1: 2 pos 3 neg
    np.testing.assert_allclose(label_weights(labels, "pos_weight").numpy(), [1.0, 1.5], rtol=1e-6)
    np.testing.assert_array_equal(label_weights(labels, "none").numpy(), [1.0, 1.0])


def test_an_au_without_positives_is_weighted_like_the_most_frequent_one_with_a_warning(caplog):
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0], [0, -1, 0]])  # rates 1/5, 0, 2/5
    with caplog.at_level("WARNING", logger="modeling_au_mlt.training.losses"):
        weights = label_weights(labels, "frequency", label_names=["AU1", "AU2", "AU4"]).numpy()
    inverse = np.array([5.0, 2.5, 2.5])  # AU2 takes AU4's inverse rate 2.5, the smallest
    np.testing.assert_allclose(weights, 3 * inverse / 10.0, rtol=1e-6)  # [1.5, 0.75, 0.75]
    assert "AU index 1 (AU2) has no positive entry" in caplog.text and "AU1" not in caplog.text
    np.testing.assert_allclose(label_weights(labels, "pos_weight").numpy(), [4.0, 1.0, 1.5], rtol=1e-6)
    nothing_present = np.array([[0, 0], [0, -1]])
    np.testing.assert_array_equal(label_weights(nothing_present, "frequency").numpy(), [1.0, 1.0])


@pytest.mark.parametrize(
    "labels, scheme, message",
    [
        ([[1, 1], [1, 0]], "pos_weight", "AU index 0 (AU1) has no negative"),
        ([[1, -1], [0, -1]], "none", "AU index 1 (AU2) has no annotated entry"),
        ([[1, 0], [0, 2]], "frequency", "row 1, AU index 1 holds 2.0"),
        ([[1, 0], [0, 1]], "inverse", "scheme: expected one of"),
    ],
)
def test_label_weights_errors_name_the_au(labels, scheme, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        label_weights(np.array(labels), scheme, label_names=["AU1", "AU2"])


def test_weighted_bce_matches_hand_computation():
    weights = torch.tensor([2.0, 0.5])
    loss = au_loss(torch.tensor(LOGITS), torch.tensor(LABELS), weights, dice_weight=0.0)
    expected = (2.0 * bce(0.0, 1) + 2.0 * bce(1.0, 0) + 0.5 * bce(-1.0, 1)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_weighted_bce_plus_dice_matches_hand_computation():
    weights = torch.tensor([2.0, 0.5])
    loss = au_loss(torch.tensor(LOGITS), torch.tensor(LABELS), weights, dice_weight=0.5)
    bce_part = (2.0 * bce(0.0, 1) + 2.0 * bce(1.0, 0) + 0.5 * bce(-1.0, 1)) / 3
    dice_au1 = soft_dice([(sigmoid(0.0), 1), (sigmoid(1.0), 0)])
    dice_au2 = soft_dice([(sigmoid(-1.0), 1)])  # the -1 entry of AU2 is left out
    expected = bce_part + 0.5 * (2.0 * dice_au1 + 0.5 * dice_au2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pos_weight_scheme_uses_bce_pos_weight_and_unweighted_dice():
    pos_weight = torch.tensor([3.0, 0.25])
    loss = au_loss(torch.tensor(LOGITS), torch.tensor(LABELS), pos_weight, scheme="pos_weight", dice_weight=1.0)
    bce_part = (bce(0.0, 1, 3.0) + bce(1.0, 0, 3.0) + bce(-1.0, 1, 0.25)) / 3
    dice_part = (soft_dice([(sigmoid(0.0), 1), (sigmoid(1.0), 0)]) + soft_dice([(sigmoid(-1.0), 1)])) / 2
    assert loss.item() == pytest.approx(bce_part + dice_part, rel=1e-6)


def test_unweighted_bce_equals_torch_mean_over_annotated_entries():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=generator)
    labels = torch.randint(-1, 2, (16, 5), generator=generator).float()
    annotated = labels != -1
    expected = F.binary_cross_entropy_with_logits(logits[annotated], labels[annotated])
    for weights in (None, torch.ones(5)):
        assert au_loss(logits, labels, weights, scheme="none", dice_weight=0).item() == pytest.approx(expected.item())


def test_gradient_flows_to_annotated_entries_only():
    logits = torch.tensor(LOGITS, requires_grad=True)
    au_loss(logits, torch.tensor(LABELS), torch.tensor([2.0, 0.5])).backward()
    assert logits.grad[0, 1] == 0
    assert (logits.grad[[0, 1, 1], [0, 0, 1]] != 0).all()


def test_nothing_annotated_gives_zero_with_gradient():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = au_loss(logits, torch.full((3, 2), -1.0), torch.tensor([1.0, 2.0]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 2))


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[100.0, -100.0], [-100.0, 100.0]], requires_grad=True)
    loss = au_loss(logits, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1.0, 1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(100.0 + 0.5 * (1 - 1 / 3), rel=1e-4)
    assert torch.isfinite(logits.grad).all()


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="must both be"):
        au_loss(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="weights: expected shape"):
        au_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2))


def test_soft_labels_are_scored_and_the_minus_one_marker_left_out():
    soft = torch.tensor([[0.9, -1.0], [0.1, 0.95]])  # smoothed / mixed labels; mixup keeps unannotated at -1
    weights = torch.tensor([2.0, 0.5])
    loss = au_loss(torch.tensor(LOGITS), soft, weights)
    bce_part = (2.0 * bce(0.0, 0.9) + 2.0 * bce(1.0, 0.1) + 0.5 * bce(-1.0, 0.95)) / 3
    dice_au1 = soft_dice([(sigmoid(0.0), 0.9), (sigmoid(1.0), 0.1)])
    dice_au2 = soft_dice([(sigmoid(-1.0), 0.95)])
    assert loss.item() == pytest.approx(bce_part + 0.5 * (2.0 * dice_au1 + 0.5 * dice_au2) / 2, rel=1e-6)
