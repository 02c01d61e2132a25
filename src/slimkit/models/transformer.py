"""``transformer``: a small pre-norm transformer encoder for sequences (1-D signals, or
images read row by row), with patching: ``patch`` consecutive steps become one token, so a
40-step signal with ``patch: 4`` is 10 tokens (attention cost falls with the square).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimkit.models.base import register_model
from slimkit.models.sequence import ChannelsFirst, SequenceConfig, sequence_shape

TRANSFORMER_SEARCH = {"width": [32, 64, 96], "depth": [1, 2, 3], "heads": [2, 4],
                      "patch": [2, 4, 8]}


class TransformerConfig(SequenceConfig):
    """Patch embedding, learned positions, pre-norm encoder layers, mean over tokens."""

    width: int = Field(64, ge=1, le=4096, description="token width (d_model)")
    depth: int = Field(2, ge=1, le=24, description="encoder layers")
    heads: int = Field(4, ge=1, le=64, description="attention heads (must divide width)")
    ffn_mult: float = Field(2.0, gt=0, le=8, description="feed-forward width / token width")
    patch: int = Field(4, ge=1, le=256, description="steps per token (1-D patching)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout in layers and before head")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerConfig:
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        return self


class SignalTransformer(nn.Module):
    """(batch, C, L) -> tokens of ``patch`` steps -> encoder -> mean -> head."""

    def __init__(self, steps: int, features: int, config: TransformerConfig,
                 num_outputs: int) -> None:
        super().__init__()
        tokens = math.ceil(steps / config.patch)
        self.view = ChannelsFirst()
        self.pad = nn.ConstantPad1d((0, tokens * config.patch - steps), 0.0)
        self.embed = nn.Conv1d(features, config.width, config.patch, stride=config.patch)
        self.position = nn.Parameter(torch.zeros(1, tokens, config.width))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, max(1, round(config.width * config.ffn_mult)),
            dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.width, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(self.pad(self.view(x))).transpose(1, 2) + self.position
        return self.head(self.drop(self.norm(self.encoder(tokens)).mean(dim=1)))


@register_model("transformer", TransformerConfig, input_ranks=(2, 3), search=TRANSFORMER_SEARCH,
                description="small transformer encoder over patches of a sequence")
def build_transformer(config: TransformerConfig, input_shape: tuple[int, ...],
                      num_outputs: int) -> nn.Module:
    """A transformer encoder for (C, L) sequences, or images read row by row (``rows``)."""
    steps, features = sequence_shape("transformer", input_shape, config.rows)
    return SignalTransformer(steps, features, config, num_outputs)
