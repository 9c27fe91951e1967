"""`Trainer` subclass training AU-MLT with the authors' loss: per-AU weighted BCE plus weighted soft Dice.

The per-AU weights come once from the training labels (`losses.label_weights`); -1 entries are masked out
of every term (`losses.au_loss`). `au_loss` is a mean over one micro-batch, so the Trainer divides it by the
gradient-accumulation steps (`loss_is_scaled_for_ga = False`): the accumulated gradient is the mean of the
micro-batch gradients, and DDP averages it over ranks. The Dice term is a batch statistic and so is computed
per micro-batch, as in the authors' code. A non-finite loss stops training on every rank, naming the step,
before the optimizer applies it or any checkpoint is written.
"""

import logging

import numpy as np
import torch
from transformers import Trainer

from ..configuration_au_mlt import NOT_ANNOTATED
from .losses import WEIGHT_SCHEMES, au_loss, label_weights, positive_rates

logger = logging.getLogger(__name__)

TEMPORAL = ("temporal_layers.", "temporal_position_embeddings")  # parameter names of the temporal layers


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def training_labels(dataset) -> np.ndarray:
    """The (N, L) float array of a split's `labels` column, read without decoding the images."""
    column = dataset.select_columns(["labels"]).with_format("numpy")[:]["labels"]
    return np.stack(column).astype(np.float32) if column.dtype == object else column.astype(np.float32)


def loss_weight_report(labels: np.ndarray, label_names: list[str], scheme: str) -> tuple[torch.Tensor, dict]:
    """Per-AU loss weights (L,) of `scheme` from training `labels` (N, L), and a JSON-ready record of them
    (`no_positive`: the AUs without a positive entry, weighted as `losses.label_weights` says)."""
    weights = label_weights(labels, scheme, label_names)
    rates = positive_rates(labels, label_names)
    report = {
        "scheme": scheme,
        "num_frames": int(len(labels)),
        "weights": {name: float(weight) for name, weight in zip(label_names, weights.tolist())},
        "positive_rates": {name: float(rate) for name, rate in zip(label_names, rates)},
        "annotated": {name: int(count) for name, count in zip(label_names, (labels != NOT_ANNOTATED).sum(axis=0))},
        "no_positive": [name for name, rate in zip(label_names, rates) if rate == 0],
    }
    return weights, report


class AUMLTTrainer(Trainer):
    """`Trainer` whose loss is `au_loss(logits, labels, weights, scheme, dice_weight)`.

    Args:
        loss_weights (`torch.Tensor` of shape `(num_labels,)`, *optional*):
            Per-AU weights from `losses.label_weights`; `None` weights every AU equally.
        loss_weighting (`str`, defaults to `"frequency"`): how `loss_weights` apply (`losses.WEIGHT_SCHEMES`).
        loss_report (`dict`, *optional*): the record of `loss_weights` (`loss_weight_report`), kept for the model card.
        dice_weight (`float`, defaults to 0.5): factor of the soft Dice term; 0 disables it.

    With `args.temporal_learning_rate`, the temporal layers' parameters get that peak learning rate (their own
    optimizer groups, same weight decay and schedule as the others).
    """

    # `compute_loss` returns a per-micro-batch mean: Trainer must divide it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        loss_weights=None,
        loss_weighting: str = "frequency",
        dice_weight: float = 0.5,
        loss_report: dict | None = None,
        **kwargs,
    ):
        if loss_weighting not in WEIGHT_SCHEMES:
            raise ValueError(f"loss_weighting: expected one of {WEIGHT_SCHEMES}, got {loss_weighting!r}")
        if dice_weight < 0:
            raise ValueError(f"dice_weight: expected a non-negative number, got {dice_weight!r}")
        super().__init__(*args, **kwargs)
        self.loss_weights = loss_weights
        self.loss_weighting = loss_weighting
        self.dice_weight = dice_weight
        self.loss_report = loss_report
        # The loss ignores `num_items_in_batch`; skip counting (and gathering) it on every step.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """Weighted BCE + Dice of the model's logits against `inputs["labels"]` (-1 masked); for clips (inputs
        with a `frame_mask` (B, T)), of every frame's logits (B * T, L), missing frames' labels masked."""
        frame_mask = inputs.get("frame_mask")
        if frame_mask is None:
            outputs = model(pixel_values=inputs["pixel_values"])
            logits, labels = outputs.logits, inputs["labels"]
        else:
            outputs = model(pixel_values=inputs["pixel_values"], frame_mask=frame_mask)
            labels = inputs["labels"].masked_fill(~frame_mask.bool()[..., None], NOT_ANNOTATED)
            logits, labels = outputs.logits.flatten(0, 1), labels.flatten(0, 1)
        loss = au_loss(
            logits,
            labels,
            self.loss_weights,
            scheme=self.loss_weighting,
            dice_weight=self.dice_weight,
        )
        # Only the logits are predictions: hidden states would reach `compute_metrics` otherwise.
        return (loss, {"logits": outputs.logits}) if return_outputs else loss

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """Trainer's optimizer, with the temporal layers' parameters moved to groups of their own learning rate
        when `args.temporal_learning_rate` is set (before any step, so no optimizer state exists yet)."""
        optimizer = super().create_optimizer(model)
        learning_rate = getattr(self.args, "temporal_learning_rate", None)
        if learning_rate is None:
            return optimizer
        temporal = {id(parameter) for name, parameter in self.model.named_parameters() if name.startswith(TEMPORAL)}
        if not temporal:
            raise ValueError("--temporal_learning_rate: the model has no temporal layers (--temporal_layers 0)")
        for group in list(optimizer.param_groups):
            moved = [parameter for parameter in group["params"] if id(parameter) in temporal]
            if moved:
                group["params"] = [parameter for parameter in group["params"] if id(parameter) not in temporal]
                optimizer.add_param_group({**group, "params": moved, "lr": learning_rate})
        optimizer.param_groups[:] = [group for group in optimizer.param_groups if group["params"]]
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        finite = torch.isfinite(loss).reshape(1).float()
        if self.args.world_size > 1:
            # Every rank must stop together: a rank raising alone would leave the others in a collective.
            finite = self.accelerator.gather(finite)
        if not bool(finite.all()):
            raise NonFiniteLossError(
                f"non-finite training loss at optimizer step {self.state.global_step + 1} "
                f"(epoch {self.state.epoch or 0.0:.3f}, loss on this rank {loss.item()}); stopped before the "
                "update, no checkpoint or model was written. Lower --learning_rate or check the inputs."
            )
        return loss
