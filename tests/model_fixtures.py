"""Tiny AU-MLT configurations shared by the tests (a few thousand parameters, 32 px images)."""

import torch

from modeling_au_mlt import AUMLTConfig

TINY_VISION = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
NUM_TOKENS = 1 + (32 // 8) ** 2  # CLS + patches


def tiny_config(**overrides) -> AUMLTConfig:
    """A tiny config; `overrides` are AUMLTConfig fields."""
    return AUMLTConfig(**{"vision_config": TINY_VISION, "decoder_attention_heads": 4, **overrides})


def random_pixels(batch_size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
