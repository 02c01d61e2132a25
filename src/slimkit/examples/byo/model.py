"""Your model: any function returning a torch.nn.Module.

slimkit passes the keyword arguments the function declares: ``input_shape`` (one sample's
shape), ``num_outputs`` (classes, or regression targets) and every ``--set model.<name>=value``.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """A small MLP with one residual block, for tabular features."""

    def __init__(self, features: int, outputs: int, width: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Linear(features, width)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                   nn.Linear(width, width))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.head(h + self.block(h))


def build_model(input_shape: tuple[int, ...], num_outputs: int, width: int = 128,
                dropout: float = 0.1) -> nn.Module:
    return ResidualMLP(input_shape[0], num_outputs, width, dropout)
