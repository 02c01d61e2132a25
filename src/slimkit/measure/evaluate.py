"""Outputs and metrics of a model (torch or ONNX) on one split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from slimkit.tasks import Split, Task


def trim_padding(x: np.ndarray) -> np.ndarray:
    """Token ids without the trailing columns that are padding (0) in every row."""
    used = np.flatnonzero((x != 0).any(axis=0))
    return x[:, : max(int(used[-1]) + 1 if used.size else 1, 2)]


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
            batch_size: int = 1024, tokens: bool = False) -> np.ndarray:
    """``fn`` over ``x`` in batches, outputs in input order. Token ids (``tokens``: int64,
    (n, seq), 0 = padding) are batched by length and trimmed of shared trailing padding: the
    same outputs, far less work."""
    if not tokens:
        return np.concatenate([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    batch_size = min(batch_size, 64)
    order = np.argsort((x != 0).sum(axis=1), kind="stable")
    parts = [fn(trim_padding(x[order[i : i + batch_size]]))
             for i in range(0, len(x), batch_size)]
    out = np.empty((len(x), *parts[0].shape[1:]), dtype=parts[0].dtype)
    out[order] = np.concatenate(parts)
    return out


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024,
            tokens: bool = False) -> np.ndarray:
    """Model outputs for ``x``, in eval mode, batched (see ``batched``)."""
    model.eval()
    return batched(lambda xb: model(torch.from_numpy(xb)).numpy(), x, batch_size, tokens)


def split_metrics(outputs: np.ndarray, split: Split, task: Task) -> dict[str, float]:
    """Every metric of ``task`` for ``outputs`` against ``split``'s targets."""
    return task.score(outputs, split.y)


def evaluate(model: nn.Module, split: Split, task: Task) -> dict[str, float]:
    """``{metric: value, ..., "loss": value}`` of ``model`` on ``split``."""
    return split_metrics(predict(model, split.x, tokens=task.token_inputs), split, task)
