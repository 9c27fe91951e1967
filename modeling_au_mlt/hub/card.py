"""The model card (`README.md`) of a trained AU-MLT folder, filled from the template `templates/au_mlt.md`.

The YAML header is built by `huggingface_hub.ModelCardData`: library, pipeline tag, tags, datasets, widget
examples (pictures shipped in the folder's `examples/`) and a `model-index` holding the per-AU and mean F1 just
measured (at the default threshold, 0.5, and at tuned thresholds).
The body (Jinja, rendered by `huggingface_hub.ModelCard.from_template`) says how to load the model, links the
demo (a Space, or the repository's `demo/` app), lists the AUs with their thresholds, the training data and
recipe, the evaluation table, intended use, limitations and ethical considerations.
"""

from collections.abc import Callable, Iterable
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..configuration_au_mlt import DEFAULT_THRESHOLD
from ..inference.photo import SYNTHETIC_AUS

TEMPLATE = Path(__file__).with_name("templates") / "au_mlt.md"
PLACEHOLDER_REPO = "your-org/au-mlt"
TAGS = ["custom_code", "action-unit-detection", "facial-action-coding-system", "face", "vision", "au-mlt"]
HUB = "https://huggingface.co"
# Pictures shipped in the model folder's `examples/` (written by `write_example_images`), shown as the Hub page's
# widget examples: file name, title.
EXAMPLES_DIR = "examples"
CARD_EXAMPLES = {  # names of `inference.photo.example_images`
    "grace_hopper.png": "Grace Hopper (real photo)",
    "synthetic_face.png": f"Synthetic face ({', '.join(SYNTHETIC_AUS)})",
}
FACS_NAMES = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU5": "upper lid raiser",
    "AU6": "cheek raiser",
    "AU7": "lid tightener",
    "AU9": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU14": "dimpler",
    "AU15": "lip corner depressor",
    "AU17": "chin raiser",
    "AU20": "lip stretcher",
    "AU23": "lip tightener",
    "AU24": "lip pressor",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU28": "lip suck",
    "AU43": "eyes closed",
    "AU45": "blink",
}


def _columns(eval_results: dict) -> list[tuple[str, Callable[[str], str], str]]:
    """(header, per-AU cell, mean cell) of each column after the AU: validation precision, recall and F1 at the
    default threshold,
    threshold and F1 tuned, then the test split's F1 at the default and at the validation-tuned settings."""
    tuned, test = "tuned_mean_f1" in eval_results, eval_results.get("test_split")
    fallback = eval_results.get("threshold_fallback", [])

    def score(prefix: str, kind: str = "f1") -> Callable[[str], str]:
        return lambda name: f"{eval_results[f'{prefix}_{kind}_{name}']:.3f}"

    def mean(prefix: str) -> str:
        return f"**{eval_results[f'{prefix}_mean_f1']:.3f}**"

    def threshold(name: str) -> str:
        return f"{eval_results['thresholds'][name]:.2f}" + (" †" if name in fallback else "")

    columns = [
        (f"Precision @{DEFAULT_THRESHOLD}", score("eval", "precision"), ""),
        (f"Recall @{DEFAULT_THRESHOLD}", score("eval", "recall"), ""),
        (f"F1 @{DEFAULT_THRESHOLD}", score("eval"), mean("eval")),
    ]
    if tuned:
        columns += [("Threshold", threshold, ""), ("F1 tuned", score("tuned"), mean("tuned"))]
    if test:
        columns.append((f"{test} F1 @{DEFAULT_THRESHOLD}", score("test"), mean("test")))
    if test and tuned:
        columns.append((f"{test} F1 tuned", score("test_tuned"), mean("test_tuned")))
    return columns


def _guard_reason(eval_results: dict) -> str:
    """Why the threshold guard kept an AU at the default threshold (`evaluation.tuning.tune_thresholds`)."""
    return (
        f"no threshold beat predicting the AU present in every frame by more than "
        f"{eval_results['threshold_guard_margin']} F1 on {eval_results['split']}"
    )


def _table_notes(eval_results: dict) -> list[str]:
    """The lines under the results table: which split each column scores, and the guard's fallbacks."""
    split, test = eval_results["split"], eval_results.get("test_split")
    notes = []
    if test:
        notes.append(
            f"Columns without a split name score {split}; the {test} columns score {test} at {DEFAULT_THRESHOLD} "
            f"and with the thresholds and smoothing tuned on {split}."
        )
    if eval_results.get("threshold_fallback"):
        notes.append(f"† kept at {DEFAULT_THRESHOLD}: {_guard_reason(eval_results)}.")
    return [""] + notes if notes else []


def results_table(eval_results: dict, label_names: list[str]) -> str:
    """Markdown table of per-AU precision, recall and F1 at the default threshold and F1 at the tuned thresholds,
    then the test split's F1 at both when it was scored, with the means; notes below it."""
    columns = _columns(eval_results)
    lines = ["| AU | " + " | ".join(header for header, _, _ in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += ["| " + " | ".join([name] + [cell(name) for _, cell, _ in columns]) + " |" for name in label_names]
    lines.append("| " + " | ".join(["**mean**"] + [mean for _, _, mean in columns]) + " |")
    return "\n".join(lines + _table_notes(eval_results))


def model_index_results(eval_results: dict, label_names: list[str], dataset: dict) -> list[EvalResult]:
    """One `EvalResult` per reported F1: the mean and every AU, at the default threshold and (when tuned) at tuned
    thresholds,
    on the validation split and, when scored, on the test split (with the validation-tuned thresholds)."""
    split, test, tuned = eval_results["split"], eval_results.get("test_split"), "tuned_mean_f1" in eval_results
    at_default = f"threshold {DEFAULT_THRESHOLD}"
    settings = [("eval", at_default, split)] + ([("tuned", "tuned thresholds", split)] if tuned else [])
    if test:
        settings.append(("test", at_default, test))
    if test and tuned:
        settings.append(("test_tuned", f"thresholds tuned on {split}", test))
    common = {
        "task_type": "image-classification",
        "task_name": "Facial Action Unit detection",
        "dataset_type": dataset["hub_id"] or dataset["name"],
        "dataset_name": dataset["name"],
        "metric_type": "f1",
    }
    results = []
    for prefix, setting, dataset_split in settings:
        results.append(
            EvalResult(
                **common,
                dataset_split=dataset_split,
                metric_name=f"mean F1 ({setting})",
                metric_value=round(eval_results[f"{prefix}_mean_f1"], 4),
            )
        )
        results += [
            EvalResult(
                **common,
                dataset_split=dataset_split,
                metric_name=f"F1 {name} ({setting})",
                metric_value=round(eval_results[f"{prefix}_f1_{name}"], 4),
            )
            for name in label_names
        ]
    return results


def widget_examples(repo_id: str, examples: list[tuple[str, str]]) -> list[dict]:
    """Widget entries of the card's metadata: each `(file name, title)` of `examples/` at its Hub address."""
    return [
        {"src": f"{HUB}/{repo_id}/resolve/main/{EXAMPLES_DIR}/{name}", "example_title": title}
        for name, title in examples
    ]


def card_data(
    config, eval_results: dict, dataset: dict, model_name: str, widget: list[dict] | None = None
) -> ModelCardData:
    """The YAML metadata of the card."""
    return ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license="apache-2.0",
        tags=TAGS,
        datasets=[dataset["hub_id"]] if dataset["hub_id"] else None,
        metrics=["f1"],
        eval_results=model_index_results(eval_results, config.label_names, dataset),
        widget=widget or None,
    )


def training_summary(
    training_args, data_args, train_metrics: dict, global_step: int, num_rows: dict, no_positive: list[str]
) -> dict:
    """Template values describing the training recipe (`no_positive`: AUs without a positive training label)."""
    augmentations = ["random zoom", "rotation", "horizontal flip", "colour jitter"] if data_args.augment else []
    if data_args.mixup_alpha:
        augmentations.append(f"mixup Beta({data_args.mixup_alpha}, {data_args.mixup_alpha})")
    if data_args.label_smoothing:
        augmentations.append(f"label smoothing {data_args.label_smoothing}")
    runtime = train_metrics.get("train_runtime")
    return {
        "num_train_rows": num_rows["train"],
        "num_eval_rows": num_rows["eval"],
        "eval_split": data_args.eval_split,
        "num_test_rows": num_rows.get("test"),
        "test_split": data_args.test_split,
        "no_positive": ", ".join(no_positive),
        "loss_weighting": training_args.loss_weighting,
        "dice_weight": training_args.dice_weight,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "weight_decay": training_args.weight_decay,
        "batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation": training_args.gradient_accumulation_steps,
        "world_size": training_args.world_size,
        "epochs": training_args.num_train_epochs,
        "steps": global_step,
        "runtime": f"{runtime / 60:.1f} min of training" if runtime else "training time not recorded",
        "augmentation": ", ".join(augmentations) or "none",
        "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
        "seed": training_args.seed,
    }


def threshold_note(config, eval_results: dict) -> str:
    """The sentence above the threshold table: where the thresholds come from, and the guard's fallbacks."""
    if config.thresholds is None:
        return f"No thresholds were tuned: every AU uses {DEFAULT_THRESHOLD}."
    note = f"Thresholds were tuned per AU on the {eval_results['split']} split (`config.thresholds`)."
    if eval_results.get("threshold_fallback"):
        fallback = ", ".join(eval_results["threshold_fallback"])
        note += f" {fallback} kept {DEFAULT_THRESHOLD}: {_guard_reason(eval_results)}."
    return note


def encoder_stem_text(config) -> str:
    """How the encoder makes its patch tokens, in words."""
    if config.encoder_stem == "conv":
        channels = ", ".join(str(channel) for channel in config.stem_channels)
        return (
            f"convolutional stem (3x3 stride-2 convolutions with {channels} channels, BatchNorm, ReLU;"
            " Xiao et al. 2021)"
        )
    return "patch-embedding stem"


def temporal_text(config) -> str | None:
    """What the temporal layers of `config` do, for the card; None for a frame model."""
    if not config.temporal_layers:
        return None
    scope = "its own AU" if config.temporal_attention_scope == "per_label" else "every AU"
    context = "earlier frames only (streaming)" if config.temporal_causal else "frames on both sides"
    return (
        f"{config.temporal_layers} temporal layer(s) over clips of up to {config.temporal_window} frames: each AU "
        f"token attends to {scope} in the {context}"
    )


def render_model_card(
    config,
    eval_results: dict,
    *,
    dataset: dict,
    training: dict,
    repo_id: str | None,
    examples: Iterable[tuple[str, str]] = (),
    space_id: str | None = None,
) -> str:
    """The README.md text of a trained model folder; `examples`: `(file name, title)` of the pictures in its
    `examples/` folder (the widget's examples), `space_id`: a Hub Space running the demo for this model.

    Without `repo_id` the card names `PLACEHOLDER_REPO`, which `hub.publish` replaces with the repository pushed to.
    """
    label_names = config.label_names
    thresholds = config.decision_thresholds()
    vision = config.vision_config
    examples = list(examples)
    repo_id = repo_id or PLACEHOLDER_REPO
    model_name = repo_id.split("/")[-1]
    synthetic = dataset["name"] == "synthetic-abaw"
    card = ModelCard.from_template(
        card_data(config, eval_results, dataset, model_name, widget_examples(repo_id, examples)),
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        space_id=space_id,
        examples=[{"file": f"{EXAMPLES_DIR}/{name}", "title": title} for name, title in examples],
        encoder=f"ViT, {vision.num_hidden_layers} layer(s), width {vision.hidden_size}, {vision.num_attention_heads} "
        f"heads, patch {vision.patch_size}, {encoder_stem_text(config)}",
        decoder_layers=config.decoder_layers,
        decoder_width=config.hidden_size,
        decoder_heads=config.decoder_attention_heads,
        decoder_norm="pre-norm" if config.decoder_norm_first else "post-norm (as in the paper)",
        label_self_attention=config.label_self_attention,
        head_type=config.head_type,
        image_size=vision.image_size,
        num_labels=config.num_labels,
        default_threshold=DEFAULT_THRESHOLD,
        smoothing_window=config.smoothing_window,
        temporal=temporal_text(config),
        threshold_note=threshold_note(config, eval_results),
        au_rows=[
            {"label": name, "description": FACS_NAMES.get(name, ""), "threshold": threshold}
            for name, threshold in zip(label_names, thresholds)
        ],
        dataset_text="procedurally generated cartoon faces in the ABAW layout (the project's synthetic job); "
        "a demonstration model, not trained on real faces"
        if synthetic
        else dataset["name"],
        dataset_limit="this model saw only synthetic cartoon faces and is not meant for real photographs."
        if synthetic
        else "they reflect the population, recording conditions and annotators of that data.",
        results_table=results_table(eval_results, label_names),
        **training,
    )
    return str(card)
