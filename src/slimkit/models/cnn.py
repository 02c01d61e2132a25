"""Plain convolutional networks for 1-D signals (cnn1d) and 2-D images (cnn2d)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from slimkit.models.base import ModelConfig, register_model


class Cnn1dConfig(ModelConfig):
    width: int = Field(128, ge=1, le=4096, description="channels of every conv layer")
    depth: int = Field(3, ge=1, le=16, description="number of conv layers")
    kernel_size: int = Field(5, ge=1, le=31, description="odd kernel size")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout probability before the head")


class Cnn2dConfig(ModelConfig):
    width: int = Field(32, ge=1, le=4096, description="channels of the first conv stage")
    depth: int = Field(2, ge=1, le=8, description="conv stages (each: two 3x3 convs + pool)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout probability before the head")


def _head(features: int, dropout: float, num_classes: int) -> list[nn.Module]:
    return [nn.Flatten(), nn.Dropout(dropout), nn.Linear(features, num_classes)]


@register_model("cnn1d", Cnn1dConfig, input_ranks=(2,), description="1-D CNN (conv-BN-ReLU)",
                search={"width": [16, 32, 64, 128], "depth": [1, 2, 3], "kernel_size": [3, 5]})
def build_cnn1d(config: Cnn1dConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, length = input_shape
    layers: list[nn.Module] = []
    for i in range(config.depth):
        stride = 2 if i > 0 and length > 4 else 1
        layers += [
            nn.Conv1d(channels, config.width, config.kernel_size, stride=stride,
                      padding=config.kernel_size // 2, bias=False),
            nn.BatchNorm1d(config.width),
            nn.ReLU(),
        ]
        channels = config.width
        length = (length + 2 * (config.kernel_size // 2) - config.kernel_size) // stride + 1
    layers += _head(channels * length, config.dropout, num_classes)
    return nn.Sequential(*layers)


@register_model("cnn2d", Cnn2dConfig, input_ranks=(3,), description="2-D CNN (VGG-style stages)",
                search={"width": [8, 16, 32], "depth": [1, 2]})
def build_cnn2d(config: Cnn2dConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for stage in range(config.depth):
        out = config.width * 2**stage
        for _ in range(2):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
    features = channels * height * width
    return nn.Sequential(*layers, *_head(features, config.dropout, num_classes))


