"""Training losses of AU-MLT: frequency-weighted binary cross-entropy plus weighted soft Dice.

The paper trains with a per-AU binary cross-entropy (eq. 10); the authors' public TensorFlow code for
their ABAW3 entry weights each AU by its inverse positive rate and adds half a soft Dice
loss. Weight of AU i: w_i = L * (1 / r_i) / sum_j (1 / r_j), r_i the positive rate of AU i over the
annotated training labels. Soft Dice of AU i over a batch:
1 - (2 * sum(p * y) + 1) / (sum(p^2) + sum(y^2) + 1).

Labels are floats per AU: 1 present, 0 absent, -1 not annotated. Entries equal to -1 are left out of
every term (rates, BCE and Dice).

An AU without any positive training entry has no inverse rate. Its BCE and Dice terms then hold negatives
only, which need no up-weighting, so it gets the inverse rate of the most frequent AU (the smallest weight;
1 / r = 1 when no AU has a positive), and under `pos_weight` the neutral 1; a warning names it.
"""

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..configuration_au_mlt import NOT_ANNOTATED

WEIGHT_SCHEMES = ("frequency", "pos_weight", "none")

logger = logging.getLogger(__name__)


def _au_name(index: int, label_names: Sequence[str] | None) -> str:
    """`AU index 3 (AU6)` when the names are known, `AU index 3` otherwise."""
    return f"AU index {index}" + (f" ({label_names[index]})" if label_names is not None else "")


def _checked_labels(labels: np.ndarray) -> np.ndarray:
    """The labels as a float (N, L) array; `ValueError` for another shape or a value outside {-1, 0, 1}."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected an array of shape (frames, AUs), got shape {labels.shape}")
    bad = ~np.isin(labels, (NOT_ANNOTATED, 0.0, 1.0))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"labels: row {row}, AU index {column} holds {float(labels[row, column])!r}; "
            "expected 1, 0 or -1 (not annotated)"
        )
    return labels


def positive_rates(labels: np.ndarray, label_names: Sequence[str] | None = None) -> np.ndarray:
    """Per-AU rate of 1s among the annotated entries (those != -1) of `labels` (N, L); shape (L,).

    Raises `ValueError` naming the AU when an AU has no annotated entry at all.
    """
    labels = _checked_labels(labels)
    annotated = (labels != NOT_ANNOTATED).sum(axis=0)  # (L,)
    for index in np.flatnonzero(annotated == 0):
        raise ValueError(f"labels: {_au_name(index, label_names)} has no annotated entry (all are -1)")
    return (labels == 1).sum(axis=0) / annotated


def label_weights(labels: np.ndarray, scheme: str, label_names: Sequence[str] | None = None) -> torch.Tensor:
    """Per-AU loss weights (L,) computed once from the training labels (N, L).

    `scheme`:
    - `"frequency"`: w_i = L * (1 / r_i) / sum_j (1 / r_j), multiplies AU i's BCE and Dice terms;
    - `"pos_weight"`: N_neg / N_pos of AU i, used as BCE `pos_weight`;
    - `"none"`: ones.

    An AU without a positive entry gets, with a warning, the inverse rate of the most frequent AU under
    `"frequency"` and 1 under `"pos_weight"` (module docstring). Raises `ValueError` naming the AU when it
    has no annotated entry, or, for `"pos_weight"`, no negative entry.
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme: expected one of {WEIGHT_SCHEMES}, got {scheme!r}")
    rates = positive_rates(labels, label_names)  # (L,)
    if scheme == "none":
        return torch.ones(len(rates), dtype=torch.float32)
    seen = rates > 0  # (L,)
    for index in np.flatnonzero(~seen):
        logger.warning(
            "%s has no positive entry in the training labels: %s",
            _au_name(index, label_names),
            "weighted like the most frequent AU" if scheme == "frequency" else "pos_weight 1",
        )
    if scheme == "frequency":
        inverse = np.divide(1.0, rates, out=np.zeros_like(rates), where=seen)
        inverse[~seen] = inverse[seen].min() if seen.any() else 1.0
        return torch.as_tensor(len(rates) * inverse / inverse.sum(), dtype=torch.float32)
    for index in np.flatnonzero(rates == 1):
        raise ValueError(f"labels: {_au_name(index, label_names)} has no negative entry; 'pos_weight' needs one")
    return torch.as_tensor(np.divide(1.0 - rates, rates, out=np.ones_like(rates), where=seen), dtype=torch.float32)


def _masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, scheme: str
) -> torch.Tensor:
    """Weighted BCE-with-logits averaged over the annotated entries (0 when there is none)."""
    if scheme == "pos_weight":
        per_entry = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights, reduction="none")
    else:
        per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights  # (B, L)
    return (per_entry * mask).sum() / mask.sum().clamp(min=1)


def _masked_soft_dice(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Soft Dice per AU over the batch's annotated entries, weighted and averaged over AUs."""
    probabilities = torch.sigmoid(logits) * mask  # (B, L)
    targets = targets * mask  # (B, L)
    overlap = 2.0 * (probabilities * targets).sum(dim=0) + 1.0  # (L,)
    total = probabilities.pow(2).sum(dim=0) + targets.pow(2).sum(dim=0) + 1.0  # (L,)
    return (weights * (1.0 - overlap / total)).mean()


def au_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    scheme: str = "frequency",
    dice_weight: float = 0.5,
) -> torch.Tensor:
    """Weighted BCE + `dice_weight` x weighted soft Dice of `logits` (B, L) against `labels` (B, L).

    `weights` (L,) come from `label_weights(..., scheme)`; `None` means no weighting. With
    `scheme="pos_weight"` they are BCE's `pos_weight` and the Dice term is unweighted; otherwise they
    multiply each AU's BCE and Dice terms. Entries equal to -1 are masked out of both terms; the BCE is
    the mean over annotated entries (mixup and label smoothing keep -1 entries at -1, `data.transforms`). With
    nothing annotated the loss is 0 and still has a gradient.
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme: expected one of {WEIGHT_SCHEMES}, got {scheme!r}")
    if logits.shape != labels.shape or logits.dim() != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must both be (batch, AUs)")
    labels = labels.to(logits.dtype)
    annotated = labels != NOT_ANNOTATED  # (B, L)
    mask = annotated.to(logits.dtype)
    targets = torch.where(annotated, labels, torch.zeros_like(labels))  # (B, L); unannotated entries -> 0
    if weights is None:
        weights = torch.ones(logits.shape[-1])
    if weights.shape != logits.shape[-1:]:
        raise ValueError(f"weights: expected shape ({logits.shape[-1]},), one per AU, got {tuple(weights.shape)}")
    weights = weights.to(device=logits.device, dtype=logits.dtype)  # (L,)
    loss = _masked_bce(logits, targets, mask, weights, scheme)
    if dice_weight:
        dice_weights = torch.ones_like(weights) if scheme == "pos_weight" else weights
        loss = loss + dice_weight * _masked_soft_dice(logits, targets, mask, dice_weights)
    return loss
