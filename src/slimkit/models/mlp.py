"""A multi-layer perceptron over the flattened input."""

from __future__ import annotations

import math

from pydantic import Field
from torch import nn

from slimkit.models.base import ModelConfig, register_model


class MlpConfig(ModelConfig):
    width: int = Field(256, ge=1, le=65536, description="hidden units per layer")
    depth: int = Field(2, ge=1, le=64, description="number of hidden layers")


@register_model("mlp", MlpConfig, input_ranks=(1, 2, 3), description="MLP on flattened inputs")
def build_mlp(config: MlpConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(config.depth):
        layers += [nn.Linear(features, config.width), nn.ReLU()]
        features = config.width
    layers += [nn.Dropout(config.dropout), nn.Linear(features, num_classes)]
    return nn.Sequential(*layers)
