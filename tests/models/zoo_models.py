"""Model-zoo CNNs as a user brings them: transformers' ResNet and MobileNetV2 classes built from
small configs (random init; nothing is downloaded). Their forward returns a ModelOutput."""

from __future__ import annotations

from transformers import (
    MobileNetV2Config,
    MobileNetV2ForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
)


def resnet(num_outputs: int, width: int = 16):
    """A ResNet: conv + max-pool stem, BatchNorm after every conv, 1x1 shortcut convs."""
    config = ResNetConfig(num_channels=1, embedding_size=width,
                          hidden_sizes=[width, 2 * width, 4 * width], depths=[1, 1, 1],
                          layer_type="basic", num_labels=num_outputs)
    return ResNetForImageClassification(config)


def mobilenet(num_outputs: int):
    """A MobileNetV2: inverted residuals with depthwise convs."""
    config = MobileNetV2Config(num_channels=1, image_size=8, depth_multiplier=0.35,
                               num_labels=num_outputs)
    return MobileNetV2ForImageClassification(config)
