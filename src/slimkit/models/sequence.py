"""What the sequence families share: how an input becomes a sequence, and the config fields.

A 1-D signal ``(channels, length)`` is ``length`` steps of ``channels`` features. An image
``(channels, height, width)`` is a sequence only when asked (``rows: true``): ``height`` steps
of ``channels * width`` features, one row per step. Anything else is refused with the reason,
which ``arch`` prints and records when it skips a family.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from slimkit.core.errors import ModelError
from slimkit.models.base import ModelConfig


class SequenceConfig(ModelConfig):
    """Fields of every sequence family."""

    rows: bool = Field(False, description="images (C, H, W): read the H rows as a sequence of "
                                          "C*W features (off: images are refused)")


def sequence_shape(family: str, input_shape: tuple[int, ...], rows: bool) -> tuple[int, int]:
    """(steps, features per step) of ``input_shape`` read as a sequence, or a ModelError that
    says why it cannot be one."""
    if len(input_shape) == 2:
        channels, length = input_shape
        return length, channels
    if len(input_shape) == 3 and rows:
        channels, height, width = input_shape
        return height, channels * width
    if len(input_shape) == 3:
        raise ModelError(f"model {family!r} reads sequences (channels, length); the input "
                         f"{tuple(input_shape)} is an image: set rows: true (--set "
                         f"model.rows=true) to read its rows as a sequence")
    raise ModelError(f"model {family!r} reads sequences (channels, length), not "
                     f"{len(input_shape)}-d inputs {tuple(input_shape)}")


class StepsLast(nn.Module):
    """(batch, channels, length) -> (batch, length, channels); an image (batch, C, H, W) ->
    (batch, H, C*W): one row per step."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return x.permute(0, 2, 1, 3).flatten(2)  # (b, h, c, w) -> (b, h, c*w)
        return x.transpose(1, 2)


class ChannelsFirst(nn.Module):
    """An image (batch, C, H, W) -> (batch, C*W, H): its rows as steps of a 1-D signal;
    a signal (batch, C, L) passes unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return x.permute(0, 1, 3, 2).flatten(1, 2)  # (b, c, w, h) -> (b, c*w, h)
        return x
