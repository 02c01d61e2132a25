"""Metrics of a torch model on one split."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimkit.tasks.base import Split, Task


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Model outputs (logits) for ``x``, in eval mode, batched."""
    model.eval()
    outs = [model(torch.from_numpy(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(outs).numpy()


def metrics_from_logits(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and mean cross-entropy loss of ``logits`` against labels ``y``."""
    t_logits = torch.from_numpy(logits)
    loss = nn.functional.cross_entropy(t_logits, torch.from_numpy(y)).item()
    accuracy = float((logits.argmax(axis=1) == y).mean())
    return {"accuracy": accuracy, "loss": loss}


def evaluate(model: nn.Module, split: Split, task: Task) -> dict[str, float]:
    """``{metric: value, "loss": value}`` of ``model`` on ``split``."""
    return metrics_from_logits(predict(model, split.x), split.y)
