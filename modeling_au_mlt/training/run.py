"""Training orchestration behind `scripts/train.py`: build, train, evaluate, tune and write a Hub-ready folder.

`run(model_args, data_args, training_args)` loads an AU dataset (`splits.py`: a converted folder, a Hub
dataset, or with no dataset argument the embedded synthetic ABAW job), builds AU-MLT (from a pretrained ViT or
a ViT-Ti/S/B-sized random encoder, or from a trained folder with `--init_from`: `temporal.py`), trains it with
`AUMLTTrainer` (a temporal model, `--temporal_layers N > 0`, on clips of frames whose scores map back to rows),
scores the validation split with the ABAW metric at the default threshold (0.5) and at tuned per-AU thresholds
(after a per-video moving average when the split has videos), scores the test split (when the dataset has one
with labels) at the default and with those validation-tuned settings, stores the tuned values in the config and
writes the model folder with its model card. Argument dataclasses and their parsing live in `arguments.py`.
`scripts/train.py` prints the results table and pushes the folder to the Hub when asked.
"""

import logging
from pathlib import Path

import numpy as np
from datasets import DatasetDict
from transformers import set_seed

from .. import AUMLTConfig, AUMLTModel
from ..atomic_io import atomic_output, write_json
from ..data.clips import ClipCollator
from ..data.transforms import (
    AUCollator,
    AugmentationConfig,
    AugmentationEpochCallback,
    EpochState,
    TrainTransform,
)
from ..evaluation.metrics import AUComputeMetrics, au_scores
from ..evaluation.tuning import GUARD_MARGIN, smooth_probabilities, tune_post_processing
from ..hub.card import CARD_EXAMPLES, EXAMPLES_DIR, render_model_card, results_table, training_summary
from ..hub.folder import image_processor_for, save_for_hub
from ..inference.photo import example_images
from .arguments import VISION_PRESETS, DataArguments, ModelArguments
from .splits import dataset_label_names, load_splits
from .temporal import clip_training_dataset, model_from_folder, per_row, scoring_dataset, temporal_settings
from .trainer import AUMLTTrainer, loss_weight_report, training_labels

logger = logging.getLogger(__name__)

LOSS_WEIGHTS_FILE = "loss_weights.json"
EVAL_RESULTS_FILE = "eval_results.json"


def build_model(model_args: ModelArguments, label_names: list[str], image_size: int | None) -> AUMLTModel:
    """AU-MLT from a pretrained ViT (`--encoder_name_or_path`) or a randomly initialised preset, with the temporal
    layers `--temporal_layers` asks for."""
    if model_args.temporal_layers:
        logger.warning(
            "a temporal model trained from scratch: it is best started from a trained frame model (--init_from)"
        )
    decoder = {
        "decoder_hidden_size": model_args.decoder_hidden_size,
        "decoder_layers": model_args.decoder_layers,
        "decoder_attention_heads": model_args.decoder_attention_heads,
        "decoder_ffn_dim": model_args.decoder_ffn_dim,
        "decoder_dropout": model_args.decoder_dropout,
        "decoder_norm_first": model_args.decoder_norm_first,
        "decoder_initializer": model_args.decoder_initializer,
        "encoder_stem": model_args.encoder_stem,
        "encoder_stem_channels": model_args.encoder_stem_channels,
        "label_self_attention": model_args.label_self_attention,
        "head_type": model_args.head_type,
        "id2label": dict(enumerate(label_names)),
        **temporal_settings(model_args),
    }
    if model_args.encoder_name_or_path:
        model = AUMLTModel.from_encoder_pretrained(model_args.encoder_name_or_path, **decoder)
        encoder_size = model.config.vision_config.image_size
        if image_size is not None and image_size != encoder_size:
            raise ValueError(f"--image_size {image_size} differs from the pretrained encoder's {encoder_size}")
        return model
    vision = dict(VISION_PRESETS[model_args.vision_preset], image_size=image_size or 112)
    vision["patch_size"] = model_args.patch_size
    if model_args.vision_num_hidden_layers is not None:
        vision["num_hidden_layers"] = model_args.vision_num_hidden_layers
    if model_args.vision_hidden_size is not None:
        if model_args.vision_hidden_size % 64:
            raise ValueError(f"--vision_hidden_size {model_args.vision_hidden_size}: expected a multiple of 64")
        width = model_args.vision_hidden_size
        vision.update(hidden_size=width, num_attention_heads=width // 64, intermediate_size=4 * width)
    return AUMLTModel(AUMLTConfig(vision_config=vision, **decoder))


def augmentation_config(data_args: DataArguments) -> AugmentationConfig:
    """The augmentation switches of `data_args`."""
    return AugmentationConfig(
        enabled=data_args.augment,
        scale_min=data_args.scale_min,
        max_rotation=data_args.max_rotation,
        flip_probability=data_args.flip_probability,
        color_jitter=data_args.color_jitter,
        mixup_alpha=data_args.mixup_alpha,
        label_smoothing=data_args.label_smoothing,
    )


def build_trainer(model, splits: DatasetDict, data_args, training_args) -> AUMLTTrainer:
    """An `AUMLTTrainer` over transformed splits (frames, or for a temporal model clips), with the loss weights
    of the training labels (the labels named by `model.config.label_names`)."""
    if training_args.dataloader_persistent_workers and data_args.augment:
        raise ValueError("--dataloader_persistent_workers keeps stale epochs in the augmentation; leave it off")
    image_processor = image_processor_for(model.config)
    epoch_state = EpochState()
    config = augmentation_config(data_args)
    if model.config.temporal_layers:
        train = clip_training_dataset(splits["train"], model.config, config, training_args.seed, epoch_state)
        collator = ClipCollator()
    else:
        train = splits["train"].with_transform(
            TrainTransform(image_processor, config, training_args.seed, epoch_state)
        )
        collator = AUCollator(config.mixup_alpha, training_args.seed, epoch_state)
    label_names = model.config.label_names
    weights, report = loss_weight_report(training_labels(splits["train"]), label_names, training_args.loss_weighting)
    logger.info("per-AU loss weights (%s): %s", report["scheme"], report["weights"])
    if training_args.should_save:
        Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(training_args.output_dir) / LOSS_WEIGHTS_FILE, report)
    return AUMLTTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=scoring_dataset(model.config, splits["eval"], data_args.eval_split),
        data_collator=collator,
        compute_metrics=AUComputeMetrics(label_names),
        callbacks=[AugmentationEpochCallback(epoch_state)],
        loss_weights=None if training_args.loss_weighting == "none" else weights,
        loss_weighting=training_args.loss_weighting,
        dice_weight=training_args.dice_weight,
        loss_report=report,
    )


def prefixed(scores: dict, prefix: str) -> dict:
    """`scores` with every key prefixed: `mean_f1` -> `<prefix>_mean_f1`."""
    return {f"{prefix}_{key}": value for key, value in scores.items()}


def split_probabilities(trainer: AUMLTTrainer, dataset, prefix: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """The Trainer's `<prefix>_*` metrics (logged), probabilities (N, L) and labels (N, L) of a split transformed
    by `scoring_dataset`, one per row of the split."""
    prediction = trainer.predict(dataset, metric_key_prefix=prefix)
    trainer.log(prediction.metrics)
    logits, labels = per_row(dataset, prediction.predictions), per_row(dataset, prediction.label_ids)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # (N, L)
    return prediction.metrics, probs, labels


def video_columns(split) -> tuple[list | None, list | None]:
    """The `video_id` and `frame` columns of an untransformed split, or (None, None) without them."""
    if {"video_id", "frame"} <= set(split.column_names):
        return list(split["video_id"]), list(split["frame"])
    return None, None


def postprocessed_scores(probs, labels, split, thresholds, window: int | None, label_names: list[str]) -> dict:
    """`au_scores` of `probs` (N, L) at `thresholds` after a moving average over `window` frames of each video
    of the untransformed `split` (None: none)."""
    video_ids, frames = video_columns(split)
    if window and video_ids is None:
        raise ValueError(
            f"smoothing over {window} frames needs video_id and frame columns; found {split.column_names}"
        )
    return au_scores(smooth_probabilities(probs, video_ids, window, frames), labels, thresholds, label_names)


def tuned_results(trainer: AUMLTTrainer, evaluation, tune: bool) -> dict:
    """Validation scores at the default threshold (`eval_*`) and, when `tune`, at the thresholds and window
    `tune_post_processing` chooses (`tuned_*`), with the AUs whose threshold the guard kept at the default
    (`threshold_fallback`).

    `evaluation` is the untransformed evaluation split, read for its `video_id` and `frame` columns.
    """
    label_names = trainer.model.config.label_names
    metrics, probs, labels = split_probabilities(trainer, trainer.eval_dataset, "eval")
    # Precision and recall at the default threshold complete the Trainer's pooled F1 (the same counts and F1).
    at_default = prefixed(au_scores(probs, labels, None, label_names), "eval")
    results = {"eval": {**metrics, **at_default}, "thresholds": None, "smoothing_window": None}
    if not tune:
        return results
    video_ids, frames = video_columns(evaluation)
    tuned = tune_post_processing(probs, labels, video_ids, frames=frames)
    scores = postprocessed_scores(probs, labels, evaluation, tuned.thresholds, tuned.smoothing_window, label_names)
    results.update(
        thresholds=tuned.thresholds,
        smoothing_window=tuned.smoothing_window,
        tuned=prefixed(scores, "tuned"),
        threshold_fallback=[label_names[index] for index in tuned.fallback],
    )
    return results


def held_out_scores(trainer: AUMLTTrainer, test, results: dict) -> dict:
    """Scores of the untransformed `test` split at the default threshold (`test_*`) and, when `results`
    (`tuned_results`) hold tuned settings, at those validation-tuned thresholds and window (`test_tuned_*`)."""
    label_names = trainer.model.config.label_names
    transformed = scoring_dataset(trainer.model.config, test, "test")
    metrics, probs, labels = split_probabilities(trainer, transformed, "test")
    scores = {**metrics, **prefixed(au_scores(probs, labels, None, label_names), "test")}
    if results["thresholds"] is not None:
        window = results["smoothing_window"]
        tuned = postprocessed_scores(probs, labels, test, results["thresholds"], window, label_names)
        scores.update(prefixed(tuned, "test_tuned"))
    return scores


def eval_results_content(
    results: dict, label_names: list[str], dataset: str, split: str, test_split: str | None
) -> dict:
    """`eval_results.json`: the Trainer's `eval_*` metrics (default threshold), `tuned_*` scores and the tuned
    settings, the guard's fallbacks, then `test_split` (None when no test split was scored) and its `test_*` /
    `test_tuned_*`."""
    content = {"dataset": dataset, "split": split, **results["eval"], **results.get("tuned", {})}
    if results["thresholds"] is not None:
        content["thresholds"] = dict(zip(label_names, results["thresholds"]))
        content.update(threshold_fallback=results["threshold_fallback"], threshold_guard_margin=GUARD_MARGIN)
    content["smoothing_window"] = results["smoothing_window"]
    return content | {"test_split": test_split} | results.get("test", {})


def write_hub_folder(trainer: AUMLTTrainer, output_dir: Path, card: str, eval_results: dict) -> None:
    """Model folder (`save_for_hub`, atomic), the card's example pictures, then `eval_results.json` and
    `README.md`, then the trainer state.

    An earlier run's card and results are removed first: a folder with a card is always a finished one.
    """
    for name in ("README.md", EVAL_RESULTS_FILE):
        (output_dir / name).unlink(missing_ok=True)
    save_for_hub(trainer.model, output_dir)
    example_images(output_dir / EXAMPLES_DIR, names=CARD_EXAMPLES)
    write_json(output_dir / EVAL_RESULTS_FILE, eval_results)
    with atomic_output(output_dir / "README.md") as temporary:
        temporary.write_text(card, encoding="utf-8")
    trainer.save_state()


def dataset_description(data_args: DataArguments) -> dict:
    """Name and kind of the training data, for the model card and `eval_results.json`."""
    if data_args.dataset_name:
        return {"hub_id": data_args.dataset_name, "name": data_args.dataset_name}
    if data_args.dataset_dir:
        return {"hub_id": None, "name": Path(data_args.dataset_dir).name}
    return {"hub_id": None, "name": "synthetic-abaw"}


def run(model_args: ModelArguments, data_args: DataArguments, training_args) -> dict:
    """Train, evaluate, tune and write the Hub-ready folder; returns the results (see `tuned_results`), with
    the test split's scores under `test` (`held_out_scores`) when it was scored, and, on the main process,
    the folder written (`output_dir`) and its results table in Markdown (`results_table`).

    `--push_to_hub` is left to the caller (`scripts/train.py` pushes the finished folder): the Trainer must
    not contact the Hub, so `training_args.push_to_hub` is switched off here.
    """
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-org/au-mlt)")
    training_args.push_to_hub = False
    if training_args.label_smoothing_factor:
        raise ValueError(
            "--label_smoothing_factor is not used by the AU loss; use --label_smoothing (annotated entries only)"
        )
    set_seed(training_args.seed)  # the random initialisation must be reproducible too
    splits = load_splits(data_args, training_args)
    label_names = dataset_label_names(splits["train"], data_args)
    if model_args.init_from:
        model = model_from_folder(model_args, label_names, data_args.image_size)
    else:
        model = build_model(model_args, label_names, data_args.image_size)
    trainer = build_trainer(model, splits, data_args, training_args)
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.log_metrics("train", train_output.metrics)
    results = tuned_results(trainer, splits["eval"], training_args.tune_postprocessing)
    if "test" in splits:
        results["test"] = held_out_scores(trainer, splits["test"], results)
    trainer.model.config.thresholds = results["thresholds"]
    trainer.model.config.smoothing_window = results["smoothing_window"]
    if not trainer.is_world_process_zero():
        return results
    label_names = trainer.model.config.label_names
    dataset = dataset_description(data_args)
    test_split = data_args.test_split if "test" in splits else None
    eval_results = eval_results_content(results, label_names, dataset["name"], data_args.eval_split, test_split)
    num_rows = {split: len(rows) for split, rows in splits.items()}
    training = training_summary(
        training_args,
        data_args,
        train_output.metrics,
        trainer.state.global_step,
        num_rows,
        trainer.loss_report["no_positive"],
    )
    card = render_model_card(
        trainer.model.config,
        eval_results,
        dataset=dataset,
        training=training,
        repo_id=training_args.hub_model_id,
        examples=CARD_EXAMPLES.items(),
        space_id=training_args.hub_space_id,
    )
    output_dir = Path(training_args.output_dir)
    write_hub_folder(trainer, output_dir, card, eval_results)
    return results | {"output_dir": output_dir.resolve(), "results_table": results_table(eval_results, label_names)}
