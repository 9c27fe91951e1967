"""What a run needs beyond a frame model trained from scratch: the model `--init_from` names, and the clip datasets
a temporal model (`--temporal_layers N > 0`) trains and is scored on (`data/clips.py`).

`--init_from DIR` starts from the trained AU-MLT in DIR:
- `--temporal_layers` equal to DIR's (0 for a frame model): training continues from DIR's weights;
- DIR a frame model and `--temporal_layers N > 0`: `AUMLTModel.from_frame_model(DIR, temporal_*=...)`, a temporal
  model whose starting logits are the frame model's;
- DIR a temporal model and another `--temporal_layers`: an error.
The architecture, and so the image processor, is DIR's: the encoder and decoder flags and `--image_size` are
ignored, with a warning naming each that holds neither its default nor DIR's value (not an error: the embedded
job's defaults set some of them, like a command line); `--encoder_name_or_path`, another starting point, is an
error.
"""

import dataclasses
import logging

import numpy as np

from .. import AUMLTConfig, AUMLTModel
from ..data.clips import ClipDataset, evaluation_clips, training_clips
from ..data.transforms import AugmentationConfig, EpochState, EvalTransform, TrainTransform
from ..hub.folder import image_processor_for
from .arguments import ModelArguments

logger = logging.getLogger(__name__)

TEMPORAL_FIELDS = (
    "temporal_layers",
    "temporal_window",
    "temporal_attention_heads",
    "temporal_causal",
    "temporal_attention_scope",
)


def temporal_settings(model_args: ModelArguments) -> dict:
    """The `temporal_*` config fields `model_args` asks for."""
    return {field: getattr(model_args, field) for field in TEMPORAL_FIELDS}


def folder_settings(config: AUMLTConfig) -> dict:
    """Per architecture flag (`ModelArguments` field, or `image_size`), the value that `config` fixes."""
    vision = config.vision_config
    return {
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "vision_num_hidden_layers": vision.num_hidden_layers,
        "vision_hidden_size": vision.hidden_size,
        "encoder_stem": config.encoder_stem,
        "encoder_stem_channels": config.stem_channels if config.encoder_stem == "conv" else None,
        "decoder_hidden_size": config.hidden_size,
        "decoder_layers": config.decoder_layers,
        "decoder_attention_heads": config.decoder_attention_heads,
        "decoder_ffn_dim": config.ffn_dim,
        "decoder_dropout": config.decoder_dropout,
        "decoder_initializer": config.decoder_initializer,
        "decoder_norm_first": config.decoder_norm_first,
        "label_self_attention": config.label_self_attention,
        "head_type": config.head_type,
    }


def ignored_flags(model_args: ModelArguments, image_size: int | None, config: AUMLTConfig, continued: bool) -> dict:
    """The flags holding neither their default nor `config`'s value, as (value, `config`'s value); the temporal
    ones too when training continues `config`'s model as it is."""
    fixed = folder_settings(config)
    given = {field: getattr(model_args, field) for field in fixed if field != "image_size"} | {
        "image_size": image_size
    }
    if continued:
        fixed |= {field: getattr(config, field) for field in TEMPORAL_FIELDS}
        given |= temporal_settings(model_args)
    defaults = {field.name: field.default for field in dataclasses.fields(ModelArguments)} | {"image_size": None}
    return {
        field: (value, fixed[field])
        for field, value in given.items()
        if value != defaults[field] and value != fixed[field]
    }


def model_from_folder(model_args: ModelArguments, label_names: list[str], image_size: int | None) -> AUMLTModel:
    """The model `--init_from` starts from (module docstring), checked against the dataset's AU names."""
    if model_args.encoder_name_or_path:
        raise ValueError("--encoder_name_or_path and --init_from are two starting points; give one")
    folder = model_args.init_from
    config = AUMLTConfig.from_pretrained(folder)
    if config.label_names != list(label_names):
        raise ValueError(f"--init_from {folder} predicts {config.label_names}; the dataset has {list(label_names)}")
    continued = model_args.temporal_layers == config.temporal_layers
    if not continued and config.temporal_layers:
        raise ValueError(
            f"--init_from {folder} holds a temporal model ({config.temporal_layers} layers): continue it with "
            f"--temporal_layers {config.temporal_layers}, or start from a frame model"
        )
    for field, (value, kept) in ignored_flags(model_args, image_size, config, continued).items():
        logger.warning("--%s %s ignored: the model of --init_from %s has %s=%r", field, value, folder, field, kept)
    if continued:
        logger.info("continuing training of the model in %s", folder)
        return AUMLTModel.from_pretrained(folder)
    logger.info("temporal model (%d layers) around the frame model in %s", model_args.temporal_layers, folder)
    return AUMLTModel.from_frame_model(folder, **temporal_settings(model_args))


def scoring_dataset(config: AUMLTConfig, split, split_name: str):
    """The transformed `split` the Trainer scores: its frames for a frame model, the evaluation clips
    (`data.clips.evaluation_clips`) of `config`'s window for a temporal one."""
    transform = EvalTransform(image_processor_for(config))
    if not config.temporal_layers:
        return split.with_transform(transform)
    index = evaluation_clips(split, config.temporal_window, config.temporal_causal, split_name)
    return ClipDataset(split, index, transform)


def per_row(dataset, values: np.ndarray) -> np.ndarray:
    """Per-row values `(N, ...)` of what the Trainer predicted on `dataset` (`scoring_dataset`): unchanged for
    frames, mapped back from `(clips, T, ...)` for clips."""
    return dataset.index.per_row(values) if isinstance(dataset, ClipDataset) else values


def clip_training_dataset(
    split, config: AUMLTConfig, augmentation: AugmentationConfig, seed: int, epoch_state: EpochState
) -> ClipDataset:
    """The training clips (`data.clips.training_clips`) of `split`, one augmentation draw per clip."""
    if augmentation.mixup_alpha > 0:
        raise ValueError(
            f"--mixup_alpha {augmentation.mixup_alpha}: mixup is not supported for clips (--temporal_layers > 0); "
            "pass --mixup_alpha 0"
        )
    transform = TrainTransform(image_processor_for(config), augmentation, seed, epoch_state)
    return ClipDataset(split, training_clips(split, config.temporal_window), transform)
