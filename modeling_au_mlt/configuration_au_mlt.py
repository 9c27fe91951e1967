"""Configuration of AU-MLT, the multi-label transformer for facial Action Unit detection.

Tallec, Yvinec, Dapogny, Bailly, "Multi-label classification with Transformers for Action Unit
Detection" (ABAW3, 2022). The encoder is a ViT (`vision_config`); the decoder is the label-token
transformer of the paper's eqs. 5-8, sized by the `decoder_*` fields.

This file is shipped next to the weights as remote code: it imports only `transformers`.
"""

from transformers import PreTrainedConfig, ViTConfig

# Label value of an entry nobody annotated (ABAW's -1): ignored by the loss and the metric.
NOT_ANNOTATED = -1
# Decision threshold of every label whose tuned threshold is not stored in `AUMLTConfig.thresholds`.
DEFAULT_THRESHOLD = 0.5
ABAW_AUS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
HEAD_TYPES = ("shared", "per_label")
DECODER_INITIALIZERS = ("glorot", "normal")
ENCODER_STEMS = ("patch", "conv")
CROSS_ATTENTION_FORMS = ("auto", "projected", "absorbed")
TEMPORAL_SCOPES = ("per_label", "all_labels")
# What `save_pretrained` records in `config.json` for `trust_remote_code` loading: transformers writes only the
# saved class's own entry, so the config carries the whole family and every saved folder names both model classes.
AUTO_MAP = {
    "AutoConfig": "configuration_au_mlt.AUMLTConfig",
    "AutoModel": "modeling_au_mlt.AUMLTModel",
    "AutoModelForImageClassification": "modeling_au_mlt.AUMLTForImageClassification",
}


class AUMLTConfig(PreTrainedConfig):
    r"""Configuration of an [`AUMLTModel`].

    Args:
        vision_config (`dict` or `ViTConfig`, *optional*):
            The ViT encoder's configuration; `None` gives `ViTConfig()` defaults (ViT-B/16, 224 px).
        encoder_stem (`str`, *optional*, defaults to `"patch"`):
            How the encoder turns pixels into patch tokens. `"patch"`: the ViT's own `patch_size` convolution
            (pretrained ViT checkpoints load unchanged). `"conv"`: a convolutional stem (Xiao et al. 2021, "Early
            convolutions help transformers see better") of 3x3 stride-2 convolutions, each followed by BatchNorm
            and ReLU, then a 1x1 convolution to the encoder width; its total stride is `patch_size`, so the token
            grid, the CLS token and the position embeddings are unchanged.
        encoder_stem_channels (`list[int]`, *optional*):
            Output channels of the conv stem's stride-2 stages, one per halving of the resolution
            (`2 ** len(encoder_stem_channels) == patch_size`); `None` gives 32, 64, 128, ... up to that length.
        decoder_hidden_size (`int`, *optional*):
            Width `d` of the label tokens. `None` uses the encoder's hidden size; any other value adds a
            linear projection of the encoder tokens to this width.
        decoder_layers (`int`, *optional*, defaults to 2):
            Number `N_l` of decoder layers (eqs. 5-7).
        decoder_attention_heads (`int`, *optional*, defaults to 8):
            Heads `N_h` of every decoder attention; must divide `d`.
        decoder_ffn_dim (`int`, *optional*):
            Width `d_mlp` of the decoder MLP (eq. 4); `None` gives `4 * d`.
        decoder_dropout (`float`, *optional*, defaults to 0.1):
            Dropout `D` on residual branches and inside the MLP.
        decoder_attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the decoder attention probabilities.
        decoder_cross_attention (`str`, *optional*, defaults to `"auto"`):
            How the token-to-image attention (eq. 6) is computed; both forms have the same weights, outputs and
            attention maps. `"projected"`: keys and values are projections of the N image tokens, 2Nd^2 + 2LNd
            multiply-adds per image and layer (L labels, width d). `"absorbed"`: the key and value projections act
            on the L label queries instead and the raw image tokens serve as every head's keys and values,
            2Ld^2 + 2HLNd (H heads); the key bias, which adds a constant per query that softmax ignores, is not
            used (it gets no gradient: DDP with gradient checkpointing needs `ddp_find_unused_parameters=True`).
            `"auto"`: the cheaper of the two for the configured image size, "absorbed" when Ld + HLN < Nd + LN and
            there is no attention dropout (the absorbed form adds the value bias after the attention, which is
            exact only while every attention row sums to 1).
        decoder_layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the decoder's LayerNorms.
        decoder_norm_first (`bool`, *optional*, defaults to `False`):
            `False`: the paper's post-norm layers, `LN[x + D(block(x))]` (eqs. 5-7). `True`: pre-norm layers,
            `x + D(block(LN(x)))`, with one LayerNorm after the last layer (Xiong et al. 2020, "On layer
            normalization in the transformer architecture").
        label_self_attention (`bool`, *optional*, defaults to `True`):
            Token self-attention among labels (eq. 5). `False` gives the Query2Label / ML-Decoder form.
        head_type (`str`, *optional*, defaults to `"shared"`):
            `"shared"`: one linear map `d -> 1` applied to every label token (eq. 8).
            `"per_label"`: one linear map `d -> 1` per label.
        thresholds (`list[float]`, *optional*):
            Per-label decision thresholds in `id2label` order; `None` means 0.5 for every label.
        smoothing_window (`int`, *optional*):
            Moving-average window (frames) over a video's probabilities, chosen on validation.
        decoder_initializer (`str`, *optional*, defaults to `"glorot"`):
            How the decoder's matrices (label tokens, attention, MLP, head) start. `"glorot"`: Glorot-uniform
            (Glorot and Bengio 2010), the Keras `Dense` default of the authors' TensorFlow code. `"normal"`:
            truncated N(0, `initializer_range`), the BERT/ViT convention.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal used for the decoder's weights with
            `decoder_initializer="normal"`.
        temporal_layers (`int`, *optional*, defaults to 0):
            Temporal layers after the label decoder; 0 gives the frame model of the paper. With N > 0 the model
            takes clips `(batch, frames, channels, height, width)`: each frame goes through the encoder and the
            label decoder, then N pre-norm layers of self-attention over the clip's frames and an MLP let each
            label token use the neighbouring frames, and the shared head scores every frame.
        temporal_window (`int`, *optional*, defaults to 16):
            Frames per clip: the most frames one forward pass takes (learned frame-position embeddings cover that
            many) and the window longer videos are scored with (`AUMLTModel.video_logits`).
        temporal_attention_heads (`int`, *optional*):
            Heads of the temporal self-attention; `None` uses `decoder_attention_heads`.
        temporal_causal (`bool`, *optional*, defaults to `False`):
            A frame attends only to itself and earlier frames (streaming); `False` uses both sides.
        temporal_attention_scope (`str`, *optional*, defaults to `"per_label"`):
            `"per_label"`: each AU's token attends to the same AU's tokens in the clip's frames. `"all_labels"`:
            to every label token of every frame of the clip.
        id2label (`dict[int, str]`, *optional*):
            The labels; defaults to the 12 ABAW AUs.
    """

    model_type = "au_mlt"
    # Trainer gathers every other output across evaluation batches; the metrics need only the logits.
    keys_to_ignore_at_inference = [
        "label_hidden_states",
        "encoder_last_hidden_state",
        "hidden_states",
        "attentions",
        "decoder_hidden_states",
        "decoder_attentions",
        "cross_attentions",
        "temporal_attentions",
    ]
    sub_configs = {"vision_config": ViTConfig}

    def __init__(
        self,
        vision_config=None,
        encoder_stem="patch",
        encoder_stem_channels=None,
        decoder_hidden_size=None,
        decoder_layers=2,
        decoder_attention_heads=8,
        decoder_ffn_dim=None,
        decoder_dropout=0.1,
        decoder_attention_dropout=0.0,
        decoder_cross_attention="auto",
        decoder_layer_norm_eps=1e-5,
        decoder_norm_first=False,
        label_self_attention=True,
        head_type="shared",
        thresholds=None,
        smoothing_window=None,
        decoder_initializer="glorot",
        initializer_range=0.02,
        temporal_layers=0,
        temporal_window=16,
        temporal_attention_heads=None,
        temporal_causal=False,
        temporal_attention_scope="per_label",
        **kwargs,
    ):
        if vision_config is None:
            vision_config = ViTConfig()
        elif isinstance(vision_config, dict):
            vision_config = ViTConfig(**vision_config)
        self.vision_config = vision_config
        self.encoder_stem = encoder_stem
        self.encoder_stem_channels = None if encoder_stem_channels is None else [int(c) for c in encoder_stem_channels]
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_layers = decoder_layers
        self.decoder_attention_heads = decoder_attention_heads
        self.decoder_ffn_dim = decoder_ffn_dim
        self.decoder_dropout = decoder_dropout
        self.decoder_attention_dropout = decoder_attention_dropout
        self.decoder_cross_attention = decoder_cross_attention
        self.decoder_layer_norm_eps = decoder_layer_norm_eps
        self.decoder_norm_first = decoder_norm_first
        self.label_self_attention = label_self_attention
        self.head_type = head_type
        self.thresholds = None if thresholds is None else [float(t) for t in thresholds]
        self.smoothing_window = smoothing_window
        self.decoder_initializer = decoder_initializer
        self.initializer_range = initializer_range
        self.temporal_layers = temporal_layers
        self.temporal_window = temporal_window
        self.temporal_attention_heads = temporal_attention_heads
        self.temporal_causal = temporal_causal
        self.temporal_attention_scope = temporal_attention_scope
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs["id2label"] = dict(enumerate(ABAW_AUS))
        if kwargs.get("id2label") is not None and kwargs.get("label2id") is None:
            kwargs["label2id"] = {name: int(index) for index, name in kwargs["id2label"].items()}
        kwargs.setdefault("problem_type", "multi_label_classification")
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(**kwargs)
        self.validate_au_mlt()

    @property
    def hidden_size(self) -> int:
        """Width `d` of the label tokens."""
        return self.decoder_hidden_size or self.vision_config.hidden_size

    @property
    def ffn_dim(self) -> int:
        """Width `d_mlp` of the decoder MLP."""
        return self.decoder_ffn_dim or 4 * self.hidden_size

    @property
    def stem_channels(self) -> list[int]:
        """Output channels of the conv stem's stride-2 stages."""
        if self.encoder_stem_channels is not None:
            return list(self.encoder_stem_channels)
        return [32 * 2**stage for stage in range(stem_stages(self.vision_config.patch_size))]

    @property
    def num_image_tokens(self) -> int:
        """Tokens N the encoder gives at the configured image size: CLS and one per patch."""
        size, patch = self.vision_config.image_size, self.vision_config.patch_size
        height, width = (size, size) if isinstance(size, int) else size
        return 1 + (height // patch) * (width // patch)

    @property
    def cross_attention_form(self) -> str:
        """`"projected"` or `"absorbed"`: the cross-attention the model builds (`decoder_cross_attention` resolved)."""
        if self.decoder_cross_attention != "auto":
            return self.decoder_cross_attention
        labels, tokens = self.num_labels, self.num_image_tokens
        width, heads = self.hidden_size, self.decoder_attention_heads
        # Multiply-adds per image and layer divided by d: absorbed 2Ld^2 + 2HLNd, projected 2Nd^2 + 2LNd.
        cheaper = labels * width + heads * labels * tokens < tokens * width + labels * tokens
        return "absorbed" if cheaper and self.decoder_attention_dropout == 0 else "projected"

    @property
    def temporal_heads(self) -> int:
        """Heads of the temporal self-attention."""
        return self.temporal_attention_heads or self.decoder_attention_heads

    @property
    def label_names(self) -> list[str]:
        """Label names in output order."""
        return [self.id2label[index] for index in range(self.num_labels)]

    def validate_au_mlt(self) -> None:
        """Raise `ValueError` naming the first field that holds an invalid value."""
        if not self.id2label:
            raise ValueError("id2label: the label set is empty; AU-MLT needs at least one label")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"id2label: keys must be 0..{len(self.id2label) - 1}, got {sorted(self.id2label)}")
        if self.decoder_initializer not in DECODER_INITIALIZERS:
            raise ValueError(
                f"decoder_initializer: expected one of {DECODER_INITIALIZERS}, got {self.decoder_initializer!r}"
            )
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type: expected one of {HEAD_TYPES}, got {self.head_type!r}")
        self.validate_encoder_stem()
        for field in ("decoder_layers", "decoder_attention_heads"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise ValueError(f"{field}: expected a positive integer, got {getattr(self, field)!r}")
        for field in ("decoder_hidden_size", "decoder_ffn_dim", "smoothing_window"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{field}: expected None or a positive integer, got {value!r}")
        if self.hidden_size % self.decoder_attention_heads:
            raise ValueError(
                f"decoder_attention_heads: {self.decoder_attention_heads} heads do not divide the decoder "
                f"hidden size {self.hidden_size}"
            )
        for field in ("decoder_dropout", "decoder_attention_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"{field}: expected a probability in [0, 1), got {getattr(self, field)!r}")
        if self.decoder_cross_attention not in CROSS_ATTENTION_FORMS:
            raise ValueError(
                f"decoder_cross_attention: expected one of {CROSS_ATTENTION_FORMS}, "
                f"got {self.decoder_cross_attention!r}"
            )
        if self.decoder_cross_attention == "absorbed" and self.decoder_attention_dropout > 0:
            raise ValueError(
                "decoder_cross_attention: the absorbed form is exact only without attention dropout, got "
                f"decoder_attention_dropout={self.decoder_attention_dropout}; use 'projected' or 'auto'"
            )
        if self.thresholds is not None:
            if len(self.thresholds) != self.num_labels:
                raise ValueError(
                    f"thresholds: expected {self.num_labels} values (one per label), got {len(self.thresholds)}"
                )
            if not all(0.0 <= t <= 1.0 for t in self.thresholds):
                raise ValueError(f"thresholds: every value must lie in [0, 1], got {self.thresholds}")
        self.validate_temporal()

    def validate_encoder_stem(self) -> None:
        """Raise `ValueError` when the stem settings cannot give the ViT's token grid."""
        if self.encoder_stem not in ENCODER_STEMS:
            raise ValueError(f"encoder_stem: expected one of {ENCODER_STEMS}, got {self.encoder_stem!r}")
        if self.encoder_stem == "patch":
            return
        patch_size = self.vision_config.patch_size
        if stem_stages(patch_size) is None:
            raise ValueError(
                f"encoder_stem: the conv stem halves the resolution per stage, so vision_config.patch_size must be a "
                f"power of 2 (at least 2), got {patch_size!r}"
            )
        channels = self.encoder_stem_channels
        if channels is not None and (2 ** len(channels) != patch_size or min(channels, default=0) < 1):
            raise ValueError(
                f"encoder_stem_channels: expected {stem_stages(patch_size)} positive channel counts (2 ** stages = "
                f"patch_size {patch_size}), got {channels}"
            )

    def validate_temporal(self) -> None:
        """Raise `ValueError` naming the first temporal field that holds an invalid value."""
        if not isinstance(self.temporal_layers, int) or self.temporal_layers < 0:
            raise ValueError(f"temporal_layers: expected a non-negative integer, got {self.temporal_layers!r}")
        if not isinstance(self.temporal_window, int) or self.temporal_window < 1:
            raise ValueError(f"temporal_window: expected a positive integer, got {self.temporal_window!r}")
        heads = self.temporal_attention_heads
        if heads is not None and (not isinstance(heads, int) or heads < 1):
            raise ValueError(f"temporal_attention_heads: expected None or a positive integer, got {heads!r}")
        if self.hidden_size % self.temporal_heads:
            raise ValueError(
                f"temporal_attention_heads: {self.temporal_heads} heads do not divide the decoder hidden size "
                f"{self.hidden_size}"
            )
        if self.temporal_attention_scope not in TEMPORAL_SCOPES:
            raise ValueError(
                f"temporal_attention_scope: expected one of {TEMPORAL_SCOPES}, got {self.temporal_attention_scope!r}"
            )

    def decision_thresholds(self) -> list[float]:
        """Per-label thresholds in output order (`DEFAULT_THRESHOLD` where none were tuned)."""
        return list(self.thresholds) if self.thresholds is not None else [DEFAULT_THRESHOLD] * self.num_labels


def stem_stages(patch_size) -> int | None:
    """Number of stride-2 stages giving a total stride of `patch_size`, or `None` when no number does."""
    if not isinstance(patch_size, int) or patch_size < 2 or patch_size & (patch_size - 1):
        return None
    return patch_size.bit_length() - 1


__all__ = ["ABAW_AUS", "AUMLTConfig"]
