"""Prototype of a cheaper, exactly equivalent cross-attention for AU-MLT's decoder (the fix measured in section 1).

The decoder's cross-attention (eq. 6) projects every image token to keys and values: 2 * N * d^2
multiply-adds per image and layer for N tokens, which at ViT-B/16 (N = 197) costs more than all the rest
of the decoder. With only L = 12 label queries, the projections can be moved to the query side instead:

    scores_h  = Q_h K_h^T = (Q_h W_kh^T) X^T + (a per-query constant from the key bias, which softmax ignores)
    context_h = A_h (X W_vh + b_vh) = (A_h X) W_vh + b_vh                       (rows of A_h sum to 1)

so X itself serves as every head's keys and values, and the per-head weights act on L rows instead of N:
2 * L * d^2 + 2 * heads * L * N * d multiply-adds instead of 2 * N * d^2 + 2 * L * N * d. Same weights,
same outputs (up to rounding), same attention maps. `absorb_cross_attention(model)` switches a built
model's cross-attention modules to this form, so the benchmarks compare both on one set of weights.
"""

import math
import types

import torch
import torch.nn.functional as F

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.modeling_au_mlt import AUMLTAttention


def absorbed_forward(
    self: AUMLTAttention,
    hidden_states: torch.Tensor,
    key_value_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`AUMLTAttention.forward` with the key and value projections moved onto the queries."""
    batch_size, num_queries, _ = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim
    rows = batch_size * num_queries
    # Per-head products run as one bmm over heads with batch and labels as rows, so the (heads, head_dim, d)
    # weights are never broadcast (copied) over the batch.
    query = self.q_proj(hidden_states).view(rows, heads, head_dim).transpose(0, 1)  # (heads, batch * labels, head_dim)
    key_weight = self.k_proj.weight.view(heads, head_dim, -1)  # (heads, head_dim, d)
    value_weight = self.v_proj.weight.view(heads, head_dim, -1)  # (heads, head_dim, d)
    absorbed = torch.bmm(query, key_weight) / math.sqrt(head_dim)  # (heads, batch * labels, d)
    # (batch, heads * labels, d): every head's queries against the same image tokens in one bmm
    absorbed = (
        absorbed.view(heads, batch_size, num_queries, -1).transpose(0, 1).reshape(batch_size, heads * num_queries, -1)
    )
    scores = torch.bmm(absorbed, key_value_states.transpose(1, 2))  # (batch, heads * labels, tokens)
    if attention_mask is not None:
        mask = attention_mask.expand(batch_size, heads, num_queries, -1).reshape(batch_size, heads * num_queries, -1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    dropped = F.dropout(weights, p=self.dropout, training=self.training)
    mixed = torch.bmm(dropped, key_value_states)  # (batch, heads * labels, d)
    mixed = (
        mixed.view(batch_size, heads, num_queries, -1).transpose(0, 1).reshape(heads, rows, -1)
    )  # (heads, batch * labels, d)
    context = torch.bmm(mixed, value_weight.transpose(1, 2))  # (heads, batch * labels, head_dim)
    context = (
        context.transpose(0, 1).reshape(batch_size, num_queries, -1) + self.v_proj.bias
    )  # (batch, labels, hidden)
    attention = weights.view(batch_size, heads, num_queries, -1) if output_attentions else None
    return self.o_proj(context), attention


def absorb_cross_attention(model: AUMLTModel) -> AUMLTModel:
    """Switch every decoder layer's cross-attention of `model` (in place) to `absorbed_forward`; returns `model`."""
    for layer in model.layers:
        layer.cross_attn.forward = types.MethodType(absorbed_forward, layer.cross_attn)
    return model
