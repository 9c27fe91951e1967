"""Command-line arguments of `scripts/train.py`: model, data and training dataclasses, and their parsing.

With no dataset argument (`--dataset_dir` / `--dataset_name`), the embedded default job's settings
(`DEFAULT_JOB`) are used as defaults: a small ViT trained on the cached synthetic ABAW data, sized to finish
within 15 minutes on 2 CPU cores. Any argument given on the command line (or in the file) overrides them.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .losses import WEIGHT_SCHEMES

# ViT-Ti/16, ViT-S/16 and ViT-B/16 encoder sizes (Touvron et al. 2021; Dosovitskiy et al. 2021).
VISION_PRESETS = {
    "tiny": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}

# The main job (no dataset argument): a small ViT with a convolutional stem, trained from scratch with plain
# masked BCE (eq. 10) on the synthetic ABAW data, scored on held-out test identities. Its measured time and
# scores, and why it departs from the authors' weighted BCE + Dice, are in docs/benchmarks.md (section 5).
DEFAULT_JOB = {
    "output_dir": "au-mlt-synthetic",
    "vision_preset": "tiny",
    "vision_hidden_size": 128,
    "vision_num_hidden_layers": 4,
    "patch_size": 8,
    "image_size": 64,
    "encoder_stem": "conv",
    "decoder_attention_heads": 4,
    "scale_min": 0.9,
    "max_rotation": 5.0,
    "color_jitter": 0.1,
    "loss_weighting": "none",
    "dice_weight": 0.0,
    "num_train_epochs": 12,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 128,
    "learning_rate": 1e-3,
    "weight_decay": 0.05,
    "warmup_steps": 0.05,
    "lr_scheduler_type": "cosine",
    "logging_steps": 50,
    "eval_strategy": "steps",  # the validation learning curve lands in trainer_state.json
    "eval_steps": 500,
    "save_strategy": "no",
    "dataloader_num_workers": 0,
}
DATASET_FLAGS = ("dataset_dir", "dataset_name")


@dataclass
class ModelArguments:
    """Which AU-MLT to train."""

    encoder_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained ViT (Hub id or local folder) used as the encoder; overrides --vision_preset."},
    )
    vision_preset: str = field(
        default="tiny",
        metadata={
            "help": "Randomly initialised encoder size when no pretrained one is given.",
            "choices": list(VISION_PRESETS),
        },
    )
    vision_num_hidden_layers: int | None = field(
        default=None, metadata={"help": "Override the preset's number of encoder layers."}
    )
    vision_hidden_size: int | None = field(
        default=None,
        metadata={
            "help": "Override the preset's encoder width (a multiple of 64: heads = width / 64, MLP = 4 x width)."
        },
    )
    patch_size: int = field(default=16, metadata={"help": "Encoder patch size for a preset encoder (pixels)."})
    encoder_stem: str = field(
        default="patch",
        metadata={
            "help": "'patch': the ViT's patch convolution (pretrained ViTs load unchanged); 'conv': a "
            "convolutional stem with the same token grid (Xiao et al. 2021).",
            "choices": ["patch", "conv"],
        },
    )
    encoder_stem_channels: list[int] | None = field(
        default=None,
        metadata={
            "help": "Channels of the conv stem's stride-2 stages (2 ** stages = patch size); default 32, 64, ..."
        },
    )
    decoder_hidden_size: int | None = field(
        default=None, metadata={"help": "Width of the label tokens; default: the encoder width."}
    )
    decoder_layers: int = field(default=2, metadata={"help": "Number of label-decoder layers."})
    decoder_attention_heads: int = field(default=8, metadata={"help": "Heads of every decoder attention."})
    decoder_ffn_dim: int | None = field(default=None, metadata={"help": "Decoder MLP width; default 4 x width."})
    decoder_dropout: float = field(default=0.1, metadata={"help": "Dropout in the decoder."})
    decoder_initializer: str = field(
        default="glorot",
        metadata={
            "help": "Decoder init: 'glorot' (Keras Dense default, the authors' code) or 'normal' (N(0, 0.02)).",
            "choices": ["glorot", "normal"],
        },
    )
    decoder_norm_first: bool = field(
        default=False, metadata={"help": "Pre-norm decoder layers instead of the paper's post-norm ones."}
    )
    label_self_attention: bool = field(
        default=True, metadata={"help": "Self-attention among label tokens (False: Query2Label/ML-Decoder form)."}
    )
    head_type: str = field(
        default="shared",
        metadata={
            "help": "'shared': one linear map for all labels (paper); 'per_label': one per label.",
            "choices": ["shared", "per_label"],
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "A trained AU-MLT folder to start from: with --temporal_layers N > 0 its frame model gains N "
            "temporal layers (`AUMLTModel.from_frame_model`); with 0 training continues from its weights."
        },
    )
    temporal_layers: int = field(
        default=0, metadata={"help": "Temporal layers over each clip's frames; 0 trains the frame model."}
    )
    temporal_window: int = field(default=16, metadata={"help": "Frames per clip of a temporal model."})
    temporal_attention_heads: int | None = field(
        default=None, metadata={"help": "Heads of the temporal attention; default --decoder_attention_heads."}
    )
    temporal_causal: bool = field(
        default=False, metadata={"help": "Temporal attention to past frames only (streaming)."}
    )
    temporal_attention_scope: str = field(
        default="per_label",
        metadata={
            "help": "'per_label': each AU's token attends to that AU in the other frames; 'all_labels': to every "
            "label token of every frame.",
            "choices": ["per_label", "all_labels"],
        },
    )


@dataclass
class DataArguments:
    """Which data, how much of it, and how it is augmented. No dataset argument runs the synthetic job."""

    dataset_dir: str | None = field(
        default=None, metadata={"help": "DatasetDict folder written by prepare_abaw.py or prepare_csv.py."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (columns image, labels)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str = field(default="validation", metadata={"help": "Split to evaluate and tune thresholds on."})
    test_split: str = field(
        default="test",
        metadata={
            "help": "Split scored at 0.5 and with the thresholds and window tuned on --eval_split, when the "
            "dataset has it with labels; '' scores none."
        },
    )
    au_names: list[str] | None = field(
        default=None, metadata={"help": "AU names in label order, for datasets that do not carry them."}
    )
    subsample: int = field(default=1, metadata={"help": "Train on every n-th row of the training split."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training rows (after subsample)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Cap on evaluation (and test) rows."})
    image_size: int | None = field(
        default=None, metadata={"help": "Input size (pixels) of a preset encoder; default 112."}
    )
    augment: bool = field(default=True, metadata={"help": "Random zoom, rotation, flip and colour jitter."})
    scale_min: float = field(default=0.8, metadata={"help": "Smallest random crop, as a fraction of the area."})
    max_rotation: float = field(default=10.0, metadata={"help": "Largest random rotation (degrees)."})
    flip_probability: float = field(default=0.5, metadata={"help": "Probability of a horizontal flip."})
    color_jitter: float = field(default=0.2, metadata={"help": "Brightness/contrast/saturation factors in 1 +- x."})
    mixup_alpha: float = field(
        default=0.0, metadata={"help": "Mixup Beta(a, a) parameter; 0 disables (authors: 0.4)."}
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "Label smoothing of annotated entries (authors: 0.1)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Cache of the synthetic job's data; default ~/.cache/au_mlt."}
    )
    synthetic_train_videos: int = field(default=160, metadata={"help": "Synthetic job: training videos (identities)."})
    synthetic_val_videos: int = field(default=40, metadata={"help": "Synthetic job: validation videos."})
    synthetic_test_videos: int = field(
        default=40, metadata={"help": "Synthetic job: test videos (identities seen in neither other split)."}
    )
    synthetic_frames_per_video: int = field(default=50, metadata={"help": "Synthetic job: frames per video."})
    synthetic_image_size: int = field(default=64, metadata={"help": "Synthetic job: face image size (pixels)."})
    synthetic_seed: int = field(default=0, metadata={"help": "Synthetic job: generator seed."})
    synthetic_nuisances: bool = field(
        default=False,
        metadata={
            "help": "Synthetic job: add the per-frame nuisances (occlusions, motion blur, lighting flicker, head "
            "turns, heavy JPEG) of `modeling_au_mlt.synthetic.nuisances`."
        },
    )

    def __post_init__(self) -> None:
        if self.dataset_dir and self.dataset_name:
            raise ValueError("give either --dataset_dir or --dataset_name, not both")
        if self.subsample < 1:
            raise ValueError(f"--subsample: expected a positive integer, got {self.subsample}")


@dataclass
class AUMLTTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the AU loss and post-processing settings."""

    loss_weighting: str = field(
        default="frequency",
        metadata={
            "help": "Per-AU loss weights from the training labels: 'frequency' (authors), 'pos_weight' "
            "(N_neg/N_pos in BCE) or 'none'.",
            "choices": list(WEIGHT_SCHEMES),
        },
    )
    dice_weight: float = field(default=0.5, metadata={"help": "Weight of the soft Dice term; 0 disables it."})
    temporal_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of the temporal layers (new layers on a trained frame model often want a "
            "larger one); default --learning_rate. Same schedule as the rest."
        },
    )
    hub_space_id: str | None = field(
        default=None,
        metadata={"help": "Hub Space running the repository's demo/ app with this model (the model card links it)."},
    )
    tune_postprocessing: bool = field(
        default=True, metadata={"help": "Tune per-AU thresholds and the video smoothing window on the eval split."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the image column is transformed on the fly."}
    )
    batch_eval_metrics: bool = field(
        default=True, metadata={"help": "Pool the ABAW metric batch by batch instead of holding all logits."}
    )


def argument_parser() -> HfArgumentParser:
    """The parser of `scripts/train.py`."""
    return HfArgumentParser(
        (ModelArguments, DataArguments, AUMLTTrainingArguments),
        description="Train AU-MLT. With no --dataset_dir/--dataset_name it runs the embedded synthetic job "
        "(defaults: " + ", ".join(f"{key}={value}" for key, value in DEFAULT_JOB.items()) + ").",
    )


def read_argument_file(path: str) -> dict:
    """Arguments from one JSON or YAML file."""
    text = Path(path).read_text()
    values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values, got {type(values).__name__}")
    return values


def parse_arguments(argv: list[str] | None = None):
    """(ModelArguments, DataArguments, AUMLTTrainingArguments) from the command line or one JSON/YAML file."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argument_parser()
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        values = read_argument_file(argv[0])
        if not any(values.get(flag) for flag in DATASET_FLAGS):
            values = {**DEFAULT_JOB, **values}
        return parser.parse_dict(values)
    given = {argument.split("=")[0].lstrip("-") for argument in argv if argument.startswith("--")}
    if not given & set(DATASET_FLAGS):
        argv = [f"--{key}={value}" for key, value in DEFAULT_JOB.items()] + argv
    return parser.parse_args_into_dataclasses(args=argv)
