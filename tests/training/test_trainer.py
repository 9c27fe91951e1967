"""AUMLTTrainer: the loss it optimises, that it learns, gradient accumulation, and the non-finite stop."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from tiny_au_data import AU_NAMES, tiny_split
from transformers import ViTImageProcessor

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.data.transforms import AUCollator, EvalTransform
from modeling_au_mlt.training.arguments import AUMLTTrainingArguments
from modeling_au_mlt.training.losses import au_loss, label_weights
from modeling_au_mlt.training.trainer import AUMLTTrainer, NonFiniteLossError, loss_weight_report, training_labels

PROCESSOR = ViTImageProcessor(size={"height": 32, "width": 32})


def au_model(**overrides) -> AUMLTModel:
    """The tiny AU-MLT with one decoder layer over `AU_NAMES`."""
    return AUMLTModel(tiny_config(decoder_layers=1, id2label=dict(enumerate(AU_NAMES)), **overrides))


def make_trainer(tmp_path: Path, train, evaluation=None, seed: int = 0, dice_weight: float = 0.5, **arguments):
    torch.manual_seed(seed)
    model = au_model(decoder_dropout=0.0)
    weights, _ = loss_weight_report(training_labels(train), AU_NAMES, "frequency")
    defaults = dict(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=seed,
        save_strategy="no",
        logging_steps=1,
        per_device_eval_batch_size=32,
    )
    return AUMLTTrainer(
        model=model,
        args=AUMLTTrainingArguments(**{**defaults, **arguments}),
        train_dataset=train.with_transform(EvalTransform(PROCESSOR)),
        eval_dataset=None if evaluation is None else evaluation.with_transform(EvalTransform(PROCESSOR)),
        data_collator=AUCollator(),
        loss_weights=weights,
        dice_weight=dice_weight,
    )


@pytest.fixture(scope="module")
def train_split():
    return tiny_split(4, 16, seed=0, split="train")


def test_loss_weight_report_by_hand():
    labels = np.array([[1, 0, -1], [0, 0, 1], [1, -1, 1], [0, 1, 0]], dtype=np.float32)
    weights, report = loss_weight_report(labels, AU_NAMES, "frequency")
    rates = np.array([2 / 4, 1 / 3, 2 / 3])
    expected = 3 * (1 / rates) / (1 / rates).sum()
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert report["annotated"] == {"AU1": 4, "AU2": 3, "AU4": 3}
    assert report["positive_rates"]["AU2"] == pytest.approx(1 / 3)
    assert report["weights"]["AU4"] == pytest.approx(expected[2])
    assert report["no_positive"] == []


def test_loss_weight_report_names_an_au_without_positives_and_weights_it_by_hand():
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [1, -1, 0]], dtype=np.float32)  # rates 1/2, 0, 1/4
    weights, report = loss_weight_report(labels, AU_NAMES, "frequency")
    inverse = np.array([2.0, 2.0, 4.0])  # AU2 gets the smallest inverse rate of the others (AU1's)
    np.testing.assert_allclose(weights.numpy(), 3 * inverse / 8.0, rtol=1e-6)  # [0.75, 0.75, 1.5]
    assert report["no_positive"] == ["AU2"] and report["weights"]["AU2"] == pytest.approx(0.75)
    weights, report = loss_weight_report(labels, AU_NAMES, "pos_weight")
    np.testing.assert_allclose(weights.numpy(), [1.0, 1.0, 3.0], rtol=1e-6)
    assert report["no_positive"] == ["AU2"]


def test_compute_loss_is_the_weighted_au_loss_and_predictions_are_the_logits(tmp_path, train_split):
    trainer = make_trainer(tmp_path, train_split)
    batch = AUCollator()([train_split.with_transform(EvalTransform(PROCESSOR))[i] for i in range(24)])
    assert (batch["labels"] == -1).any()
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    logits = trainer.model(pixel_values=batch["pixel_values"]).logits
    weights = label_weights(training_labels(train_split), "frequency")
    torch.testing.assert_close(loss, au_loss(logits, batch["labels"], weights, scheme="frequency", dice_weight=0.5))
    assert set(outputs) == {"logits"}


def test_a_few_steps_lower_the_validation_loss(tmp_path, train_split):
    evaluation = tiny_split(2, 16, seed=1, split="validation")
    trainer = make_trainer(
        tmp_path,
        train_split,
        evaluation,
        max_steps=20,
        learning_rate=1e-2,
        per_device_train_batch_size=16,
        warmup_steps=0,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.85 * before, (before, after)


def final_weights(trainer) -> dict[str, torch.Tensor]:
    trainer.train()
    return {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    # Fully annotated rows and no Dice: the mean of two half-batch means is the full-batch mean exactly.
    # Plain SGD without clipping makes the update proportional to the gradient, so a mis-scaled loss shows.
    train = tiny_split(2, 16, seed=2, split="train", unannotated=0.0)
    common = dict(max_steps=4, learning_rate=0.5, optim="sgd", max_grad_norm=0.0, warmup_steps=0, dice_weight=0.0)
    full = make_trainer(
        tmp_path / "full", train, per_device_train_batch_size=8, gradient_accumulation_steps=1, **common
    )
    accumulated = make_trainer(
        tmp_path / "ga", train, per_device_train_batch_size=4, gradient_accumulation_steps=2, **common
    )
    full_weights, accumulated_weights = final_weights(full), final_weights(accumulated)
    moved = max(
        (full_weights[name] - value).abs().max()
        for name, value in au_model().state_dict().items()
        if name in full_weights and value.shape == full_weights[name].shape
    )
    assert moved > 1e-3  # training changed the weights, so equality below means something
    for name, value in full_weights.items():
        torch.testing.assert_close(accumulated_weights[name], value, atol=2e-6, rtol=1e-5, msg=name)
    full_losses = [entry["loss"] for entry in full.state.log_history if "loss" in entry]
    accumulated_losses = [entry["loss"] for entry in accumulated.state.log_history if "loss" in entry]
    np.testing.assert_allclose(accumulated_losses, full_losses, rtol=1e-5)


def test_non_finite_loss_stops_naming_the_step_before_any_checkpoint(tmp_path, train_split):
    trainer = make_trainer(
        tmp_path, train_split, max_steps=6, save_strategy="steps", save_steps=1, per_device_train_batch_size=8
    )
    calls = {"count": 0}

    def poison_third_step(module, inputs, output):
        calls["count"] += 1
        if calls["count"] == 3:
            output.logits = output.logits * float("nan")
        return output

    trainer.model.register_forward_hook(poison_third_step)
    with pytest.raises(NonFiniteLossError, match="optimizer step 3 "):
        trainer.train()
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_temporal_learning_rate_gives_the_temporal_layers_their_own_groups(tmp_path, train_split):
    trainer = make_trainer(tmp_path, train_split, learning_rate=1e-4, temporal_learning_rate=3e-3, weight_decay=0.1)
    trainer.model = AUMLTModel.from_frame_model(trainer.model, temporal_layers=1, temporal_window=4)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    names = {id(parameter): name for name, parameter in trainer.model.named_parameters()}
    seen = []
    for group in trainer.optimizer.param_groups:
        group_names = [names[id(parameter)] for parameter in group["params"]]
        temporal = {name.startswith(("temporal_layers.", "temporal_position_embeddings")) for name in group_names}
        assert len(temporal) == 1  # a group holds temporal parameters only, or none
        assert group["lr"] == (3e-3 if temporal.pop() else 1e-4)
        seen += group_names
    assert sorted(seen) == sorted(names.values())  # every parameter in exactly one group
    assert {group["weight_decay"] for group in trainer.optimizer.param_groups} == {0.0, 0.1}
    with pytest.raises(ValueError, match="no temporal layers"):
        make_trainer(tmp_path, train_split, temporal_learning_rate=3e-3).create_optimizer()
