"""Efficient families for 1-D signals and 2-D images: MobileNet-style (depthwise-separable
inverted residual blocks, width multiplier) and EfficientNet-style (MBConv with
squeeze-and-excitation, compound scaling of width, depth and input length/resolution).

Both keep tiny inputs in mind: a stage downsamples (stride 2) only while the signal is longer
than 4, and the head either averages over positions (``pool``) or keeps them (``flatten``).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator
from torch import nn

from slimkit.models.base import ModelConfig, register_model
from slimkit.models.blocks import ConvBNAct, InvertedResidual, make_divisible

STAGE_CHANNELS = (16, 24, 40, 80, 112, 192)
STEM_CHANNELS = 16
# EfficientNet's compound scaling constants (Tan & Le, 2019): width, depth, resolution
ALPHA, BETA, GAMMA = 1.1, 1.2, 1.15


class MobileConfig(ModelConfig):
    """MobileNetV2-style network: stages of inverted residual blocks."""

    width_mult: float = Field(1.0, gt=0, le=8, description="multiplier of every stage's channels")
    depth: int = Field(3, ge=1, le=len(STAGE_CHANNELS), description="stages (each halves length)")
    blocks: int = Field(1, ge=1, le=8, description="inverted residual blocks per stage")
    kernel_size: int = Field(3, ge=1, le=15, description="odd depthwise kernel size")
    expansion: int = Field(4, ge=1, le=8, description="channel expansion inside a block")
    head: Literal["pool", "flatten"] = Field("flatten", description="average positions or keep")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout probability before the head")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd (keeps the length), got {value}")
        return value


class EfficientConfig(MobileConfig):
    """EfficientNet-style network: MBConv blocks with squeeze-excitation, compound scaling."""

    phi: float = Field(0.0, ge=-3, le=4, description="compound coefficient: width x1.1^phi, "
                                                        "depth x1.2^phi, length x1.15^phi")
    se_ratio: float = Field(0.25, ge=0, le=1, description="squeeze-excitation bottleneck ratio")


def _build(config: MobileConfig, input_shape: tuple[int, ...], num_classes: int,
           width: float, blocks: int, se_ratio: float, act: type[nn.Module],
           size_scale: float = 1.0) -> nn.Module:
    dim = len(input_shape) - 1
    channels, *spatial = input_shape
    layers: list[nn.Module] = []
    if size_scale != 1.0:
        spatial = [max(1, round(s * size_scale)) for s in spatial]
        layers.append(nn.Upsample(size=tuple(spatial), mode="linear" if dim == 1 else "bilinear",
                                  align_corners=False))
    stem = make_divisible(STEM_CHANNELS * width)
    layers.append(ConvBNAct(dim, channels, stem, 3, act=act))
    cin = stem
    for stage in range(config.depth):
        cout = make_divisible(STAGE_CHANNELS[stage] * width)
        for block in range(blocks):
            stride = 2 if block == 0 and min(spatial) > 4 else 1
            layers.append(InvertedResidual(dim, cin, cout, config.kernel_size, stride,
                                           config.expansion, se_ratio, act))
            spatial = [(s - 1) // stride + 1 for s in spatial]
            cin = cout
    if config.head == "pool":
        layers.append(nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1))
        features = cin
    else:
        features = cin * math.prod(spatial)
    layers += [nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(features, num_classes)]
    return nn.Sequential(*layers)


@register_model("mobilenet", MobileConfig, input_ranks=(2, 3),
                description="MobileNetV2-style: depthwise-separable inverted residuals (1-D/2-D)")
def build_mobilenet(config: MobileConfig, input_shape: tuple[int, ...],
                    num_classes: int) -> nn.Module:
    """A MobileNetV2-style network for 1-D (C, L) or 2-D (C, H, W) inputs."""
    return _build(config, input_shape, num_classes, config.width_mult, config.blocks, 0.0,
                  nn.ReLU6)


@register_model("efficientnet", EfficientConfig, input_ranks=(2, 3),
                description="EfficientNet-style: MBConv + squeeze-excitation, compound scaling")
def build_efficientnet(config: EfficientConfig, input_shape: tuple[int, ...],
                       num_classes: int) -> nn.Module:
    """An EfficientNet-style network; ``phi`` scales width, depth and input size together."""
    width = config.width_mult * ALPHA**config.phi
    blocks = max(1, math.ceil(config.blocks * BETA**config.phi))
    return _build(config, input_shape, num_classes, width, blocks, config.se_ratio, nn.SiLU,
                  size_scale=GAMMA**config.phi)
