"""``tcn``: a temporal convolutional network (Bai, Kolter & Koltun, 2018) for sequences.

Levels of residual blocks, each two causal convolutions dilated by 2^level, so the receptive
field grows exponentially with depth; the head reads the last step, which has seen the whole
receptive field (or averages over steps).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor, nn

from slimkit.models.base import register_model
from slimkit.models.sequence import ChannelsFirst, SequenceConfig, sequence_shape

TCN_SEARCH = {"width": [16, 32, 64], "depth": [2, 3, 4], "kernel_size": [3, 5]}


class TcnConfig(SequenceConfig):
    """Residual levels of dilated causal convolutions."""

    width: int = Field(32, ge=1, le=4096, description="channels of every level")
    depth: int = Field(3, ge=1, le=12, description="levels (level i dilates by 2^i)")
    kernel_size: int = Field(3, ge=2, le=31, description="kernel size of each causal conv")
    readout: Literal["last", "mean"] = Field("last", description="last step or mean over steps")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout in blocks and before head")


class CausalConv(nn.Sequential):
    """Left padding by ``(kernel - 1) * dilation`` then a conv: step t sees steps <= t only."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int) -> None:
        super().__init__(nn.ConstantPad1d(((kernel - 1) * dilation, 0), 0.0),
                         nn.Conv1d(cin, cout, kernel, dilation=dilation, bias=False),
                         nn.BatchNorm1d(cout), nn.ReLU())


class TemporalBlock(nn.Module):
    """Two causal convolutions and a residual (1x1 conv when the channels change)."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(CausalConv(cin, cout, kernel, dilation), nn.Dropout(dropout),
                                  CausalConv(cout, cout, kernel, dilation), nn.Dropout(dropout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class Tcn(nn.Module):
    """Channels-first view, the levels, the readout and a linear head."""

    def __init__(self, features: int, config: TcnConfig, num_outputs: int) -> None:
        super().__init__()
        blocks, cin = [], features
        for level in range(config.depth):
            blocks.append(TemporalBlock(cin, config.width, config.kernel_size, 2**level,
                                        config.dropout))
            cin = config.width
        self.view = ChannelsFirst()
        self.levels = nn.Sequential(*blocks)
        self.readout = config.readout
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.width, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.levels(self.view(x))
        features = out.mean(dim=2) if self.readout == "mean" else out[:, :, -1]
        return self.head(self.drop(features))


@register_model("tcn", TcnConfig, input_ranks=(2, 3), search=TCN_SEARCH,
                description="TCN: residual dilated causal convolutions over a sequence")
def build_tcn(config: TcnConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A TCN for (C, L) sequences, or images read row by row (``rows``)."""
    _, features = sequence_shape("tcn", input_shape, config.rows)
    return Tcn(features, config, num_outputs)
