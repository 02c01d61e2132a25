"""Recurrent families for sequences: ``gru`` and ``lstm`` (stacked, optionally bidirectional).

Both export to onnxruntime's own GRU/LSTM operators (one operator per layer, not a loop), so a
recurrent model runs as fast as the runtime's kernels; onnxruntime has an int8 kernel for LSTM
(``quantize`` mode ``dynamic``) but not for GRU, whose operator stays float.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimkit.models.base import register_model
from slimkit.models.sequence import SequenceConfig, StepsLast, sequence_shape

RECURRENT_FAMILIES = ("gru", "lstm")  # their int8 and pruning limits: see the techniques
RECURRENT_SEARCH = {"width": [16, 32, 64, 128], "depth": [1, 2], "bidirectional": [False, True]}


class RecurrentConfig(SequenceConfig):
    """A stack of recurrent layers read out at the last step (or averaged over steps)."""

    width: int = Field(64, ge=1, le=4096, description="hidden units per direction")
    depth: int = Field(1, ge=1, le=8, description="stacked recurrent layers")
    bidirectional: bool = Field(False, description="also read the sequence backwards")
    readout: Literal["last", "mean"] = Field(
        "last", description="last: the final hidden state (both ends when bidirectional); "
                            "mean: the average over steps")
    dropout: float = Field(0.1, ge=0.0, lt=1.0,
                           description="dropout between layers and before the head")


class Recurrent(nn.Module):
    """Steps-last view, a ``nn.GRU``/``nn.LSTM`` stack, the readout and a linear head."""

    def __init__(self, cell: type[nn.GRU] | type[nn.LSTM], features: int,
                 config: RecurrentConfig, num_outputs: int) -> None:
        super().__init__()
        self.steps = StepsLast()
        self.rnn = cell(features, config.width, num_layers=config.depth, batch_first=True,
                        bidirectional=config.bidirectional,
                        dropout=config.dropout if config.depth > 1 else 0.0)
        self.readout, self.width = config.readout, config.width
        self.bidirectional = config.bidirectional
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.width * (2 if config.bidirectional else 1), num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.steps(x))
        if self.readout == "mean":
            features = out.mean(dim=1)
        elif self.bidirectional:  # the forward pass ends at the last step, the backward at 0
            features = torch.cat([out[:, -1, :self.width], out[:, 0, self.width:]], dim=1)
        else:
            features = out[:, -1]
        return self.head(self.drop(features))


def _build(cell: type[nn.GRU] | type[nn.LSTM], name: str, config: RecurrentConfig,
           input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    _, features = sequence_shape(name, input_shape, config.rows)
    return Recurrent(cell, features, config, num_outputs)


@register_model("gru", RecurrentConfig, input_ranks=(2, 3), search=RECURRENT_SEARCH,
                description="GRU over the steps of a sequence (images: rows, when asked)")
def build_gru(config: RecurrentConfig, input_shape: tuple[int, ...],
              num_outputs: int) -> nn.Module:
    """A GRU stack for (C, L) sequences, or images read row by row (``rows``)."""
    return _build(nn.GRU, "gru", config, input_shape, num_outputs)


@register_model("lstm", RecurrentConfig, input_ranks=(2, 3), search=RECURRENT_SEARCH,
                description="LSTM over the steps of a sequence (images: rows, when asked)")
def build_lstm(config: RecurrentConfig, input_shape: tuple[int, ...],
               num_outputs: int) -> nn.Module:
    """An LSTM stack for (C, L) sequences, or images read row by row (``rows``)."""
    return _build(nn.LSTM, "lstm", config, input_shape, num_outputs)
