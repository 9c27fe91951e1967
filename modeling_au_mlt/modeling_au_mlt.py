"""AU-MLT: multi-label transformer for facial Action Unit detection.

Tallec, Yvinec, Dapogny, Bailly, "Multi-label classification with Transformers for Action Unit
Detection" (ABAW3, 2022). Equations referenced below are the paper's:

- `AUMLTConvStem`: the optional convolutional stem of the encoder (`encoder_stem="conv"`), the early
  convolutions of Xiao et al. 2021 ("Early convolutions help transformers see better") in place of the ViT's
  patch convolution; the paper's authors likewise put a CNN in front of their transformer layer.
- `AUMLTAttention`: multi-head attention, eqs. 1-3, with the binary mask of eq. 2.
- `AUMLTAbsorbedCrossAttention`: eq. 6's token-to-image attention with the key and value projections moved
  onto the label queries, `(Q_h W_kh^T) X^T` and `(A_h X) W_vh`: same weights and outputs, cheaper when the
  labels are few and the image tokens many (`AUMLTConfig.decoder_cross_attention`).
- `AUMLTMLP`: the MLP block, eq. 4.
- `AUMLTDecoderLayer`: token self-attention (eq. 5), token-to-patch cross-attention (eq. 6) and the MLP
  block (eq. 7), each with a residual connection and a post-LayerNorm (or, with `decoder_norm_first`, a
  pre-LayerNorm, Xiong et al. 2020).
- `AUMLTTemporalLayer`: not in the paper; the extension to video clips. Each frame's label tokens T(N_l) attend
  over the clip's frames (per AU, or to every label token of every frame), with learned frame positions,
  then an MLP: pre-norm `x + D(block(LN(x)))` with zero-initialised output maps, so a temporal model built
  from a frame model (`AUMLTModel.from_frame_model`) starts by scoring every frame exactly as that model did
  (the zero-initialised residual branch of ControlNet, Zhang et al. 2023, and Fixup, Zhang et al. 2019).
- `AUMLTHead`: eq. 8's W_p, one map from each label token to its logit.
- `AUMLTModel`: a ViT encoder gives the image tokens X, learned label tokens T(0) go through `N_l`
  decoder layers, optionally `temporal_layers` layers over a clip's frames, and the head maps each token to
  one logit (eq. 8). The loss is eq. 10's BCE, averaged over annotated entries (`masked_bce`).
- `AUMLTForImageClassification`: the same model under the name the image-classification pipeline loads.

This file is shipped next to the weights as remote code: it imports only torch, transformers and
`.configuration_au_mlt`.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, ViTModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_au_mlt import NOT_ANNOTATED, AUMLTConfig

STEM_PREFIX = "embeddings.patch_embeddings."  # the encoder's patch stem, in `ViTModel.state_dict()` names
logger = logging.get_logger(__name__)


@dataclass
class AUMLTOutput(ModelOutput):
    r"""Outputs of [`AUMLTModel`]; the encoder's fields are named as in transformers' `ImageClassifierOutput`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            BCE-with-logits (eq. 10) averaged over the annotated entries of `labels` (those not equal to -1).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            One logit per label; `sigmoid(logits)` are the probabilities of eq. 8.
        label_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_labels, decoder_hidden_size)`):
            The label tokens T(N_l) after the last decoder layer.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_tokens, hidden_size)`):
            The image tokens X (ViT CLS token first, then the patches in row-major order).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            With `output_hidden_states=True`: the ViT embeddings and each ViT layer's output,
            each `(batch_size, num_tokens, hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            With `output_attentions=True` and eager attention: each ViT layer's attention weights,
            `(batch_size, encoder_heads, num_tokens, num_tokens)`.
        decoder_hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            With `output_hidden_states=True`: T(0) and each decoder layer's output,
            each `(batch_size, num_labels, decoder_hidden_size)`.
        decoder_attentions (`tuple(torch.FloatTensor)`, *optional*):
            With `output_attentions=True`, eager attention and `label_self_attention`: each decoder layer's
            token self-attention weights, `(batch_size, decoder_heads, num_labels, num_labels)`.
            cross_attentions (`tuple(torch.FloatTensor)`, *optional*):
            With `output_attentions=True` and eager attention: each decoder layer's token-to-image attention
            weights, `(batch_size, decoder_heads, num_labels, num_tokens)`; where each AU looks.
        temporal_attentions (`tuple(torch.FloatTensor)`, *optional*):
            With `output_attentions=True`, eager attention and `temporal_layers > 0`: each temporal layer's weights,
            `(batch_size, num_labels, temporal_heads, frames, frames)` with `temporal_attention_scope="per_label"`,
            `(batch_size, temporal_heads, frames * num_labels, frames * num_labels)` (frame-major) with
            `"all_labels"`.

    With `temporal_layers > 0` and clips `(batch_size, frames, ...)` as input, `logits` are
    `(batch_size, frames, num_labels)` and `label_hidden_states` `(batch_size, frames, num_labels,
    decoder_hidden_size)`; the per-frame fields (`encoder_last_hidden_state`, `hidden_states`, `attentions`,
    `decoder_*`, `cross_attentions`) hold one row per frame whose `frame_mask` is true, in (batch, frame) order.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    label_hidden_states: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    temporal_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class AUMLTFrameStates(ModelOutput):
    """Per-frame outputs of the encoder and label decoder, before any temporal layer, final norm or head.

    `label_states` is `(frames, num_labels, decoder_hidden_size)`; the other fields are those of [`AUMLTOutput`].
    """

    label_states: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


def expand_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Boolean mask, True where a query may attend to a key (eq. 2's Delta = 0), as 4-D for every head.

    (queries, keys) -> (1, 1, queries, keys); (batch, queries, keys) -> (batch, 1, queries, keys); 4-D as is.
    """
    if mask is None:
        return None
    mask = mask.bool()
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    return mask[(None,) * (4 - mask.dim())]


def sliding_windows(num_frames: int, window: int, causal: bool) -> list[tuple[int, int, int, int]]:
    """How a sequence longer than one clip is scored: `(start, stop, score_start, score_stop)` per window.

    Windows of up to `window` frames start every `window // 2` frames; frames `[start, stop)` go through one forward
    pass and frames `[score_start, score_stop)` take their logits from it. The scored ranges partition
    `range(num_frames)`: each frame is scored once, in the window where it has the most context.

    Both sides (`causal=False`): windows of `min(window, num_frames)` frames, the last one ending on the last frame;
    a frame is scored where it has the most frames on its poorer side. Past only (`causal=True`): a frame is scored
    in the earliest window holding it, the one with the most frames before it, and windows past the end are cut
    short instead of moved, so a frame's window, hence its score, never depends on later frames (streaming gives
    the same scores).
    """
    if num_frames < 1 or window < 1:
        raise ValueError(f"sliding_windows: expected positive num_frames and window, got {num_frames}, {window}")
    length = window if causal else min(window, num_frames)
    stride = max(1, length // 2)
    last = num_frames - length
    windows = []
    for frame in range(num_frames):
        first_index = max(0, -(-(frame - length + 1) // stride))  # the first start on the grid holding `frame`
        grid = range(first_index * stride, frame + 1, stride)
        if causal:
            best = grid[0]
        else:
            covering = [start for start in grid if start < last] + ([last] if last <= frame else [])
            best = max(covering, key=lambda start: (min(frame - start, start + length - 1 - frame), -start))
        if windows and windows[-1][0] == best:
            windows[-1][3] = frame + 1
        else:
            windows.append([best, min(best + length, num_frames), frame, frame + 1])
    return [tuple(window) for window in windows]


def temporal_attention_mask(frame_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """(batch, frames) validity -> (batch, frames, frames): frame i may attend to frame j.

    A frame sees the valid frames of its clip (only earlier ones when `causal`) and always itself, so no row is
    empty (SDPA returns NaN for an all-masked row) and a padded frame changes no other frame.
    """
    frames = frame_mask.shape[1]
    allowed = frame_mask[:, None, :].expand(-1, frames, -1)
    if causal:
        allowed = allowed & torch.ones(frames, frames, dtype=torch.bool, device=frame_mask.device).tril()
    return allowed | torch.eye(frames, dtype=torch.bool, device=frame_mask.device)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 10's BCE averaged over annotated entries; `NOT_ANNOTATED` entries contribute nothing."""
    labels = labels.to(logits.dtype)
    annotated = labels != NOT_ANNOTATED
    losses = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    return (losses * annotated).sum() / annotated.sum().clamp(min=1)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T * scaling) V with a boolean mask, in transformers' attention-interface convention.

    query `(batch, heads, queries, dim)`, key and value `(batch, heads, keys, dim)`; returns the output
    `(batch, queries, heads, dim)` and the weights `(batch, heads, queries, keys)`.
    """
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    # float32 softmax, as transformers' eager attention does: half-precision scores lose the small weights.
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(F.dropout(weights, p=dropout, training=module.training), value)
    return output.transpose(1, 2).contiguous(), weights


class AUMLTConvStem(nn.Module):
    """Stride-2 3x3 convolutions with BatchNorm and ReLU, then a 1x1 convolution to the encoder width.

    A drop-in for `ViTPatchEmbeddings`: same input, same `(batch, patches, hidden)` output on the same grid
    (total stride `patch_size`), and a final convolution named `projection`, whose dtype `ViTModel` reads.
    """

    def __init__(self, config: AUMLTConfig):
        super().__init__()
        vision = config.vision_config
        self.image_size = (
            (vision.image_size, vision.image_size) if isinstance(vision.image_size, int) else tuple(vision.image_size)
        )
        self.patch_size = (vision.patch_size, vision.patch_size)
        self.num_channels = vision.num_channels
        self.num_patches = (self.image_size[0] // vision.patch_size) * (self.image_size[1] // vision.patch_size)
        stages, in_channels = [], vision.num_channels
        for out_channels in config.stem_channels:
            # No conv bias: the BatchNorm that follows has its own.
            stages += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.projection = nn.Conv2d(in_channels, vision.hidden_size, kernel_size=1)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        # transformers 5.0's ViTEmbeddings passes `interpolate_pos_encoding`; the position embeddings are
        # interpolated there, and convolutions take any image size, so the stem has nothing to do with it.
        if pixel_values.shape[1] != self.num_channels:
            raise ValueError(f"pixel_values: expected {self.num_channels} channels, got {pixel_values.shape[1]}")
        features = self.projection(self.stages(pixel_values))  # (batch, hidden, height / patch, width / patch)
        return features.flatten(2).transpose(1, 2)  # (batch, patches, hidden)


class AUMLTAttention(nn.Module):
    """Multi-head attention of eqs. 1-3, through transformers' attention interface (eager, SDPA, ...).

    `attention_mask` is boolean, `(batch or 1, 1 or heads, queries, keys)`, True where a query may attend to a
    key (Delta = 0). Only eager attention returns the weights, as in transformers' models.
    """

    def __init__(self, config: AUMLTConfig, num_heads: int | None = None):
        """`num_heads`: `None` gives `config.decoder_attention_heads` (the temporal layers pass their own)."""
        super().__init__()
        self.config = config
        self.num_heads = num_heads or config.decoder_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.decoder_attention_dropout
        self.is_causal = False  # read by the SDPA interface, which would otherwise apply a causal mask
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def attend(self, query, key, value, attention_mask, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The configured attention implementation on `(batch, heads, length, dim)` inputs."""
        # `get_interface` also validates the name; transformers 5.0 has only item access. transformers decides
        # from this file's source that the implementation can change at run time (both forms are looked for).
        if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):
            interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        elif self.config._attn_implementation == "eager":
            interface = eager_attention_forward
        else:
            interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        dropout = self.dropout if self.training else 0.0
        return interface(self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling, **kwargs)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, num_queries, _ = hidden_states.shape
        head_shape = (batch_size, -1, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(head_shape).transpose(1, 2)  # (batch, heads, queries, head_dim)
        key = self.k_proj(key_value_states).view(head_shape).transpose(1, 2)  # (batch, heads, keys, head_dim)
        value = self.v_proj(key_value_states).view(head_shape).transpose(1, 2)
        context, weights = self.attend(query, key, value, attention_mask, **kwargs)  # (batch, queries, heads, hd)
        return self.o_proj(context.reshape(batch_size, num_queries, -1)), weights


class AUMLTAbsorbedCrossAttention(AUMLTAttention):
    """`AUMLTAttention` for eq. 6 with the key and value projections moved onto the L label queries.

    Per head h, with W_kh, W_vh the head's `(head_dim, d)` rows of the key and value maps:

        Q_h K_h^T = (Q_h W_kh) X^T + (Q_h b_kh) 1^T     the second term is constant per query: softmax drops it
        A_h V_h   = (A_h X) W_vh^T + b_vh                 rows of A_h sum to 1

    so the H x L absorbed queries `Q_h W_kh` attend, as one head of width d, to the raw image tokens X as keys
    and values. Besides the query and output maps, 2Ld^2 + 2HLNd multiply-adds per image instead of
    2Nd^2 + 2LNd; same parameters, outputs and attention weights as `AUMLTAttention`. The key bias is not used.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, num_labels, _ = hidden_states.shape
        rows = self.num_heads * num_labels
        key_weight = self.k_proj.weight.view(self.num_heads, self.head_dim, -1)  # (heads, head_dim, d)
        value_weight = self.v_proj.weight.view(self.num_heads, self.head_dim, -1)
        query = self.q_proj(hidden_states).view(batch_size, num_labels, self.num_heads, self.head_dim)
        query = torch.einsum("blhe,hed->bhld", query, key_weight)  # (batch, heads, labels, d)
        image = key_value_states.unsqueeze(1)  # (batch, 1, tokens, d): one key/value head shared by all rows
        if attention_mask is not None:
            # (batch or 1, 1 or heads, labels, tokens) -> one row per (head, label), in the queries' order
            attention_mask = attention_mask.expand(-1, self.num_heads, num_labels, -1)
            attention_mask = attention_mask.reshape(attention_mask.shape[0], 1, rows, -1)
        mixed, weights = self.attend(query.reshape(batch_size, 1, rows, -1), image, image, attention_mask, **kwargs)
        mixed = mixed.reshape(batch_size, self.num_heads, num_labels, -1)  # A_h X: (batch, heads, labels, d)
        context = torch.einsum("bhld,hed->blhe", mixed, value_weight).reshape(batch_size, num_labels, -1)
        if weights is not None:
            weights = weights.reshape(batch_size, self.num_heads, num_labels, -1)  # (batch, heads, labels, tokens)
        return self.o_proj(context + self.v_proj.bias), weights


class AUMLTMLP(nn.Module):
    """MLP block of eq. 4: D(GELU(Q W_g)) W_l, then dropout (applied by the layer's residual)."""

    def __init__(self, config: AUMLTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.ffn_dim)
        self.fc2 = nn.Linear(config.ffn_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.decoder_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(hidden_states))))


class AUMLTDecoderLayer(GradientCheckpointingLayer):
    """One decoder layer: eqs. 5 (optional), 6 and 7.

    Post-norm as in the paper, `LN[x + D(block(x))]`; with `decoder_norm_first`, pre-norm `x + D(block(LN(x)))`.
    """

    def __init__(self, config: AUMLTConfig):
        super().__init__()
        eps = config.decoder_layer_norm_eps
        self.norm_first = config.decoder_norm_first
        self.self_attn = AUMLTAttention(config) if config.label_self_attention else None
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=eps) if config.label_self_attention else None
        absorbed = config.cross_attention_form == "absorbed"
        self.cross_attn = (AUMLTAbsorbedCrossAttention if absorbed else AUMLTAttention)(config)
        self.cross_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.mlp = AUMLTMLP(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.dropout = nn.Dropout(config.decoder_dropout)

    def residual_block(
        self, hidden_states: torch.Tensor, layer_norm: nn.LayerNorm, block
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`LN[x + D(block(x))]`, or `x + D(block(LN(x)))` when norm-first; `block` returns (output, weights)."""
        if self.norm_first:
            output, weights = block(layer_norm(hidden_states))
            return hidden_states + self.dropout(output), weights
        output, weights = block(hidden_states)
        return layer_norm(hidden_states + self.dropout(output)), weights

    def forward(
        self,
        hidden_states: torch.Tensor,
        image_states: torch.Tensor,
        self_attention_mask: torch.Tensor | None = None,
        cross_attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        self_weights = None
        if self.self_attn is not None:
            hidden_states, self_weights = self.residual_block(  # eq. 5
                hidden_states,
                self.self_attn_layer_norm,
                lambda states: self.self_attn(states, states, self_attention_mask, **kwargs),
            )
        hidden_states, cross_weights = self.residual_block(  # eq. 6
            hidden_states,
            self.cross_attn_layer_norm,
            lambda states: self.cross_attn(states, image_states, cross_attention_mask, **kwargs),
        )
        hidden_states, _ = self.residual_block(  # eq. 7
            hidden_states, self.final_layer_norm, lambda states: (self.mlp(states), None)
        )
        return hidden_states, self_weights, cross_weights


class AUMLTTemporalLayer(GradientCheckpointingLayer):
    """Self-attention of label tokens over a clip's frames, then an MLP; pre-norm, `x + D(block(LN(x)))`.

    The frame-position embeddings are added to the normalised tokens the attention reads, not to the residual
    stream, and `_init_weights` zeroes the attention's and the MLP's output maps: at initialisation the layer is
    the identity, whatever the position embeddings.
    """

    def __init__(self, config: AUMLTConfig):
        super().__init__()
        eps = config.decoder_layer_norm_eps
        self.self_attn = AUMLTAttention(config, num_heads=config.temporal_heads)
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.mlp = AUMLTMLP(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.dropout = nn.Dropout(config.decoder_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # hidden_states: (sequences, length, hidden); position_embeddings broadcast to it.
        states = self.self_attn_layer_norm(hidden_states) + position_embeddings
        attended, weights = self.self_attn(states, states, attention_mask, **kwargs)
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.dropout(self.mlp(self.final_layer_norm(hidden_states)))
        return hidden_states, weights


class AUMLTHead(nn.Module):
    """Eq. 8's W_p: one `d -> 1` map shared by all label tokens, or one per label (`head_type="per_label"`)."""

    def __init__(self, config: AUMLTConfig):
        super().__init__()
        num_maps = 1 if config.head_type == "shared" else config.num_labels
        self.weight = nn.Parameter(torch.empty(num_maps, config.hidden_size))
        self.bias = nn.Parameter(torch.zeros(num_maps))

    def forward(self, label_states: torch.Tensor) -> torch.Tensor:
        # (..., labels, hidden) * (1 or labels, hidden) -> (..., labels)
        return (label_states * self.weight).sum(dim=-1) + self.bias


class AUMLTPreTrainedModel(PreTrainedModel):
    config_class = AUMLTConfig
    config: AUMLTConfig
    base_model_prefix = "au_mlt"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["ViTEmbeddings", "ViTLayer", "AUMLTDecoderLayer", "AUMLTTemporalLayer"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise AU-MLT's own modules; transformers dispatches the ViT encoder to its own `_init_weights`.

        `decoder_initializer="glorot"` draws every decoder matrix (label tokens W_t, attention and MLP maps, head
        W_p) from Glorot-uniform(fan_in, fan_out), the default of the Keras `Dense` layers the authors' TensorFlow
        code is built from; `"normal"` draws them from N(0, initializer_range), as BERT and ViT do.
        """
        if isinstance(module, nn.Linear):
            # The temporal layers' output maps start at zero: each such layer starts as the identity. (Decided here:
            # transformers initialises children first and then skips parameters already initialised.)
            if module in self.zero_initialised_maps():
                nn.init.zeros_(module.weight)
            else:
                self.init_matrix(module.weight, fan_in=module.in_features, fan_out=module.out_features)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, AUMLTHead):
            # Each map of W_p is one d -> 1 dense layer, whether shared or one per label.
            self.init_matrix(module.weight, fan_in=module.weight.shape[-1], fan_out=1)
            nn.init.zeros_(module.bias)
        elif isinstance(module, AUMLTModel):
            # T(0) = I_L W_t: W_t is an L -> d dense layer.
            self.init_matrix(module.label_embeddings, fan_in=self.config.num_labels, fan_out=self.config.hidden_size)
            if module.temporal_position_embeddings is not None:
                nn.init.trunc_normal_(module.temporal_position_embeddings, std=self.config.initializer_range)
            if isinstance(module.encoder.embeddings.patch_embeddings, AUMLTConvStem):
                # The encoder's own init (run first, on its submodules) gives convolutions N(0, 0.02); ReLU stages
                # want He initialisation. Their BatchNorms were reset to the identity by the same pass.
                stem = module.encoder.embeddings.patch_embeddings
                for layer in stem.stages:
                    if isinstance(layer, nn.Conv2d):
                        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")

    def zero_initialised_maps(self) -> set[nn.Module]:
        """The temporal layers' attention output and MLP output maps."""
        layers = getattr(self, "temporal_layers", ())
        return {map_ for layer in layers for map_ in (layer.self_attn.o_proj, layer.mlp.fc2)}

    def init_matrix(self, weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
        """Fill a decoder matrix by `config.decoder_initializer` (fans given: W_t and W_p are stored transposed)."""
        if self.config.decoder_initializer == "glorot":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(weight, -bound, bound)
        else:
            nn.init.trunc_normal_(weight, std=self.config.initializer_range)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained` with `save_original_format=False` by default: the weight names of
        `state_dict()`.

        transformers 5.x saves the ViT encoder under its legacy weight names by default
        (https://github.com/huggingface/transformers/issues/48805), so a plain `load_state_dict`, as in Trainer's
        resume and `load_best_model_at_end`, silently misses the encoder. Remove this method once the oldest
        supported transformers saves `state_dict()` names by default or resumes through its weight renaming.
        """
        kwargs.setdefault("save_original_format", False)
        return super().save_pretrained(save_directory, *args, **kwargs)


class AUMLTModel(AUMLTPreTrainedModel):
    """ViT encoder, learned label tokens, `decoder_layers` decoder layers and a sigmoid head (eqs. 5-10); with
    `temporal_layers > 0`, temporal layers between the decoder and the head score clips of frames."""

    def __init__(self, config: AUMLTConfig):
        super().__init__(config)
        self.encoder = ViTModel(config.vision_config, add_pooling_layer=False)
        if config.encoder_stem == "conv":
            self.encoder.embeddings.patch_embeddings = AUMLTConvStem(config)
        encoder_size = config.vision_config.hidden_size
        # The paper's X has the decoder's width; a narrower decoder needs the encoder tokens projected.
        self.input_projection = (
            nn.Linear(encoder_size, config.hidden_size) if config.hidden_size != encoder_size else nn.Identity()
        )
        # T(0) = I_L W_t: one learned embedding per label.
        self.label_embeddings = nn.Parameter(torch.empty(config.num_labels, config.hidden_size))
        self.layers = nn.ModuleList([AUMLTDecoderLayer(config) for _ in range(config.decoder_layers)])
        # One learned position per frame of a clip; an attribute of None keeps frame models' weights unchanged.
        self.temporal_position_embeddings = (
            nn.Parameter(torch.empty(config.temporal_window, config.hidden_size)) if config.temporal_layers else None
        )
        self.temporal_layers = nn.ModuleList([AUMLTTemporalLayer(config) for _ in range(config.temporal_layers)])
        # Pre-norm layers leave the residual stream unnormalised: normalise it once before the head.
        self.final_layer_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)
            if config.decoder_norm_first
            else nn.Identity()
        )
        self.head = AUMLTHead(config)
        self.post_init()

    @classmethod
    def from_encoder_pretrained(cls, encoder_name_or_path: str, **config_kwargs) -> "AUMLTModel":
        """Build AU-MLT around a pretrained ViT (Hub id or local folder); the decoder starts fresh.

        With `encoder_stem="conv"` the transformer blocks come from the checkpoint and the stem, which replaces
        the checkpoint's patch convolution, starts fresh; the freshly initialised weights are logged.
        """
        encoder = ViTModel.from_pretrained(encoder_name_or_path, add_pooling_layer=False)
        model = cls(AUMLTConfig(vision_config=encoder.config.to_dict(), **config_kwargs))
        weights = encoder.state_dict()
        if model.config.encoder_stem != "patch":
            weights = {name: tensor for name, tensor in weights.items() if not name.startswith(STEM_PREFIX)}
        missing, unexpected = model.encoder.load_state_dict(weights, strict=False)
        fresh = [name for name in missing if name.startswith(STEM_PREFIX)]
        if unexpected or len(fresh) != len(missing):
            raise ValueError(
                f"{encoder_name_or_path}: encoder weights do not match (missing {missing}, unexpected {unexpected})"
            )
        if fresh:
            logger.warning(
                "%s: the %s stem is newly initialised (%d tensors: %s); the transformer blocks are the checkpoint's",
                encoder_name_or_path,
                model.config.encoder_stem,
                len(fresh),
                ", ".join(fresh),
            )
        return model

    @classmethod
    def from_frame_model(cls, frame_model: "str | AUMLTModel", **temporal_config) -> "AUMLTModel":
        """A temporal model around a trained frame model (a loaded model, Hub id or folder), same weights.

        `temporal_config` sets the `temporal_*` fields (`temporal_layers` at least 1); every other weight and
        setting is the frame model's. The temporal layers start as the identity, so the new model gives every
        frame exactly the frame model's logits until it is trained.
        """
        if not isinstance(frame_model, AUMLTPreTrainedModel):
            frame_model = cls.from_pretrained(frame_model)
        other = sorted(key for key in temporal_config if not key.startswith("temporal_"))
        if other:
            raise ValueError(f"from_frame_model sets only temporal_* fields; got {other}")
        if frame_model.config.temporal_layers:
            raise ValueError(
                f"from_frame_model: the model already has {frame_model.config.temporal_layers} temporal layers"
            )
        if not temporal_config.get("temporal_layers"):
            raise ValueError("from_frame_model: expected temporal_layers >= 1")
        config = copy.deepcopy(frame_model.config)
        for key, value in temporal_config.items():
            setattr(config, key, value)
        config.validate_au_mlt()
        model = cls(config)
        missing, unexpected = model.load_state_dict(frame_model.state_dict(), strict=False)
        fresh = ("temporal_layers.", "temporal_position_embeddings")
        if unexpected or any(not name.startswith(fresh) for name in missing):
            raise ValueError(f"from_frame_model: weights do not match (missing {missing}, unexpected {unexpected})")
        parameter = next(frame_model.parameters())
        return model.to(device=parameter.device, dtype=parameter.dtype)

    def get_input_embeddings(self) -> nn.Module:
        """The encoder's stem, which turns pixels into patch tokens (a `ViTPatchEmbeddings` or `AUMLTConvStem`)."""
        return self.encoder.embeddings.patch_embeddings

    def decode_frames(
        self,
        pixel_values: torch.Tensor,
        self_attention_mask: torch.Tensor | None = None,
        cross_attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        interpolate_pos_encoding: bool | None = None,
    ) -> AUMLTFrameStates:
        """Encoder and label decoder on images `(frames, channels, height, width)`: T(N_l) per frame (eqs. 5-7)."""
        encoder_outputs = self.encoder(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        image_states = self.input_projection(encoder_outputs.last_hidden_state)  # (frames, tokens, hidden)
        self_attention_mask = expand_mask(self_attention_mask)
        cross_attention_mask = expand_mask(cross_attention_mask)

        # T(0) for every image, (frames, labels, hidden): a copy, so no output is a view of the parameter.
        hidden_states = self.label_embeddings.repeat(pixel_values.shape[0], 1, 1)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        self_weights, cross_weights = (), ()
        for layer in self.layers:
            hidden_states, layer_self_weights, layer_cross_weights = layer(
                hidden_states,
                image_states,
                self_attention_mask,
                cross_attention_mask,
                output_attentions=output_attentions,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            # Only eager attention returns weights; SDPA warns that it cannot.
            if output_attentions and layer_cross_weights is not None:
                cross_weights += (layer_cross_weights,)
                self_weights += (layer_self_weights,) if layer_self_weights is not None else ()
        return AUMLTFrameStates(
            label_states=hidden_states,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions or None,
            decoder_hidden_states=all_hidden_states,
            decoder_attentions=self_weights or None,
            cross_attentions=cross_weights or None,
        )

    def frame_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Label tokens T(N_l) of each image `(frames, channels, height, width)`: `(frames, labels, hidden)`.

        The costly per-frame part of a temporal model; `video_logits` scores a sequence of them.
        """
        return self.decode_frames(pixel_values).label_states

    def temporal_states(
        self,
        label_states: torch.Tensor,
        frame_mask: torch.Tensor,
        causal: bool,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The temporal layers on clips of label tokens `(batch, frames, labels, hidden)`; `frame_mask` `(batch,
        frames)` is false where a frame is missing. Returns the tokens (same shape) and, with `output_attentions`
        and eager attention, each layer's weights (see `AUMLTOutput.temporal_attentions`)."""
        batch_size, num_frames, num_labels, width = label_states.shape
        if num_frames > self.config.temporal_window:
            raise ValueError(
                f"pixel_values: {num_frames} frames exceed temporal_window={self.config.temporal_window}; "
                "score longer sequences with video_logits (sliding windows)"
            )
        positions = self.temporal_position_embeddings[:num_frames]  # (frames, hidden)
        allowed = temporal_attention_mask(frame_mask, causal)  # (batch, frames, frames)
        per_label = self.config.temporal_attention_scope == "per_label"
        if per_label:
            # One sequence per (clip, AU): the AU's token in each frame.
            hidden_states = label_states.transpose(1, 2).reshape(batch_size * num_labels, num_frames, width)
            allowed = allowed.repeat_interleave(num_labels, dim=0)  # (batch * labels, frames, frames)
        else:
            # One sequence per clip: every label token of every frame, frame-major.
            hidden_states = label_states.reshape(batch_size, num_frames * num_labels, width)
            positions = positions.repeat_interleave(num_labels, dim=0)  # (frames * labels, hidden)
            allowed = allowed.repeat_interleave(num_labels, dim=1).repeat_interleave(num_labels, dim=2)
        attention_mask = expand_mask(allowed)
        all_weights = ()
        for layer in self.temporal_layers:
            hidden_states, weights = layer(
                hidden_states, positions, attention_mask, output_attentions=output_attentions
            )
            if output_attentions and weights is not None:
                all_weights += (weights.unflatten(0, (batch_size, num_labels)) if per_label else weights,)
        if per_label:
            hidden_states = hidden_states.view(batch_size, num_labels, num_frames, width).transpose(1, 2)
        return hidden_states.reshape(label_states.shape), all_weights

    def video_logits(
        self, frame_states: torch.Tensor, frame_mask: torch.Tensor | None = None, causal: bool | None = None
    ) -> torch.Tensor:
        """Logits `(frames, labels)` of one sequence of `frame_states` `(frames, labels, hidden)` of any length.

        A frame model scores each frame alone. A temporal model scores `sliding_windows` of `temporal_window`
        frames, all in one batch, each frame from one window; `frame_mask` `(frames,)` is false where a frame is
        missing, and `causal` (default `config.temporal_causal`) restricts each frame to earlier frames.
        """
        if not self.config.temporal_layers:
            return self.head(self.final_layer_norm(frame_states))
        causal = self.config.temporal_causal if causal is None else causal
        num_frames = frame_states.shape[0]
        if frame_mask is None:
            frame_mask = torch.ones(num_frames, dtype=torch.bool, device=frame_states.device)
        windows = sliding_windows(num_frames, self.config.temporal_window, causal)
        length = max(stop - start for start, stop, _, _ in windows)
        # One batch of windows; causal windows cut short at the end are padded with missing frames.
        clips = frame_states.new_zeros(len(windows), length, *frame_states.shape[1:])  # (windows, T, labels, hidden)
        masks = torch.zeros(len(windows), length, dtype=torch.bool, device=frame_states.device)  # (windows, T)
        for index, (start, stop, _, _) in enumerate(windows):
            clips[index, : stop - start] = frame_states[start:stop]
            masks[index, : stop - start] = frame_mask[start:stop].bool()
        states, _ = self.temporal_states(clips, masks, causal)
        clip_logits = self.head(self.final_layer_norm(states))  # (windows, T, labels)
        return torch.cat(
            [clip_logits[index, first - start : last - start] for index, (start, _, first, last) in enumerate(windows)]
        )

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        causal: bool | None = None,
        self_attention_mask: torch.Tensor | None = None,
        cross_attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_dict: bool | None = None,
    ) -> AUMLTOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor`):
                Face images normalised by the image processor, `(batch_size, channels, height, width)`. A temporal
                model (`temporal_layers > 0`) also takes clips `(batch_size, frames, channels, height, width)` of at
                most `temporal_window` frames; a 4-D input is then a batch of one-frame clips.
            labels (`torch.FloatTensor`, *optional*):
                1 present, 0 absent, -1 not annotated (ignored by the loss); shaped like `logits`.
            frame_mask (`torch.BoolTensor` of shape `(batch_size, frames)`, *optional*):
                Clips only: false for padded or missing frames, which skip the encoder, are seen by no other frame
                and add nothing to the loss. Default: every frame present.
            causal (`bool`, *optional*):
                Clips only: each frame attends to itself and earlier frames; default `config.temporal_causal`.
            self_attention_mask (`torch.BoolTensor`, *optional*):
                Broadcastable to `(batch_size, num_labels, num_labels)`;
                true where label i may attend to label j (eq. 2's Delta = 0).
            cross_attention_mask (`torch.BoolTensor`, *optional*):
                Broadcastable to `(batch_size, num_labels, num_tokens)`;
                true where label i may attend to image token j.
            output_attentions (`bool`, *optional*):
                Return the attention weights; they need eager attention (`attn_implementation="eager"`).

        Returns `logits` `(batch_size, num_labels)` for images and `(batch_size, frames, num_labels)` for clips.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        is_clip = pixel_values.dim() == 5
        if is_clip and not self.config.temporal_layers:
            raise ValueError("pixel_values: a frame model (temporal_layers=0) takes 4-D images, got a 5-D clip")
        if frame_mask is not None and not is_clip:
            raise ValueError("frame_mask: given for 4-D images; it applies to 5-D clips only")
        clips = pixel_values if is_clip else pixel_values[:, None]  # (batch, frames, channels, height, width)
        batch_size, num_frames = clips.shape[:2]
        if frame_mask is not None:
            frame_mask = frame_mask.bool()
            if frame_mask.shape != (batch_size, num_frames):
                raise ValueError(
                    f"frame_mask: expected shape {(batch_size, num_frames)}, got {tuple(frame_mask.shape)}"
                )

        pixels = clips.flatten(0, 1)  # (batch * frames, channels, height, width)
        # Missing frames skip the encoder (and its BatchNorm batch statistics); without a mask none is missing.
        frames = self.decode_frames(
            pixels if frame_mask is None else pixels[frame_mask.flatten()],
            self_attention_mask,
            cross_attention_mask,
            output_attentions,
            output_hidden_states,
            interpolate_pos_encoding,
        )
        hidden_states = frames.label_states
        if frame_mask is not None:
            hidden_states = hidden_states.new_zeros(batch_size * num_frames, *hidden_states.shape[1:])
            hidden_states[frame_mask.flatten()] = frames.label_states
        hidden_states = hidden_states.unflatten(0, (batch_size, num_frames))  # (batch, frames, labels, hidden)
        temporal_weights = ()
        if self.config.temporal_layers:
            causal = self.config.temporal_causal if causal is None else causal
            present = torch.ones(batch_size, num_frames, dtype=torch.bool, device=clips.device)
            hidden_states, temporal_weights = self.temporal_states(
                hidden_states, present if frame_mask is None else frame_mask, causal, output_attentions
            )
        hidden_states = self.final_layer_norm(hidden_states)
        logits = self.head(hidden_states)  # (batch, frames, labels)
        if not is_clip:
            hidden_states, logits = hidden_states[:, 0], logits[:, 0]
        loss = None
        if labels is not None:
            labels = labels.to(logits.dtype)
            if frame_mask is not None:  # labels of missing frames count as not annotated, whatever they hold
                labels = labels.masked_fill(~frame_mask[..., None], NOT_ANNOTATED)
            loss = masked_bce(logits, labels)
        output = AUMLTOutput(
            loss=loss,
            logits=logits,
            label_hidden_states=hidden_states,
            encoder_last_hidden_state=frames.encoder_last_hidden_state,
            hidden_states=frames.hidden_states,
            attentions=frames.attentions,
            decoder_hidden_states=frames.decoder_hidden_states,
            decoder_attentions=frames.decoder_attentions,
            cross_attentions=frames.cross_attentions,
            temporal_attentions=temporal_weights or None,
        )
        return output if return_dict else output.to_tuple()


class AUMLTForImageClassification(AUMLTModel):
    """[`AUMLTModel`] under the name `AutoModelForImageClassification` and the image-classification pipeline load.

    AU-MLT is itself a multi-label classifier (logits and loss), so this class adds nothing: both classes have
    the same weights under the same names and load the same checkpoints.
    """


__all__ = [
    "AUMLTConvStem",
    "AUMLTForImageClassification",
    "AUMLTFrameStates",
    "AUMLTModel",
    "AUMLTOutput",
    "AUMLTPreTrainedModel",
    "sliding_windows",
]
