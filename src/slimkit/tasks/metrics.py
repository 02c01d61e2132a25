"""Metrics and training losses for each kind of task.

| kind | training loss | metrics (direction) |
| --- | --- | --- |
| classification | cross-entropy | ``accuracy`` (max), ``f1`` macro (max) |
| regression | mean squared error | ``mse`` (min), ``mae`` (min) |
| embedding | 1 - cosine + mse | ``cosine`` mean (max), ``top10`` retrieval agreement (max) |

A task's primary metric is one of its kind's, or a user's function ``fn(outputs, targets)``
returning a number (with the direction the user gives). ``loss`` is always reported too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from slimkit.core.errors import TaskError

KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1"),
    "regression": ("mse", "mae"),
    "embedding": ("cosine", "top10"),
}
KINDS = tuple(KIND_METRICS)
DIRECTIONS = {"accuracy": "maximize", "f1": "maximize", "mse": "minimize", "mae": "minimize",
              "cosine": "maximize", "top10": "maximize"}
PERCENT_METRICS = ("accuracy", "f1", "top10")  # shown as percentages

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kind_of_metric(metric: str) -> str | None:
    """The task kind a built-in metric belongs to (None: not a built-in metric)."""
    return next((k for k, names in KIND_METRICS.items() if metric in names), None)


def embedding_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - mean cosine similarity, plus the mean squared error (keeps the scale)."""
    cosine = F.cosine_similarity(outputs, targets, dim=1, eps=1e-8).mean()
    return 1.0 - cosine + F.mse_loss(outputs, targets)


def training_loss(kind: str, label_smoothing: float = 0.0) -> Loss:
    """The loss ``fit`` minimizes for a task of ``kind``."""
    if kind == "classification":
        return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if kind == "regression":
        return torch.nn.MSELoss()
    return embedding_loss


def _f1_macro(pred: np.ndarray, y: np.ndarray, classes: int) -> float:
    scores = []
    for c in range(classes):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        if tp + fp + fn > 0:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def _normalize(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def mean_cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean cosine similarity of matching rows."""
    return float(np.mean(np.sum(_normalize(outputs) * _normalize(targets), axis=1)))


def topk_agreement(outputs: np.ndarray, targets: np.ndarray, k: int = 10) -> float:
    """Share of each row's ``k`` nearest neighbours (cosine, among the other rows) that are
    the same under ``outputs`` as under ``targets``: retrieval agreement."""
    n = len(outputs)
    if n < 2:
        return 1.0
    k = min(k, n - 1)

    def neighbours(x: np.ndarray) -> np.ndarray:
        sim = _normalize(x) @ _normalize(x).T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    ours, theirs = neighbours(outputs), neighbours(targets)
    overlap = [len(np.intersect1d(a, b)) for a, b in zip(ours, theirs, strict=True)]
    return float(np.mean(overlap) / k)


def kind_metrics(outputs: np.ndarray, targets: np.ndarray, kind: str) -> dict[str, float]:
    """The standard metrics of ``kind`` and the training loss, on one split."""
    out_t, y_t = torch.from_numpy(outputs.astype(np.float32)), torch.from_numpy(targets)
    if kind == "classification":
        pred = outputs.argmax(axis=1)
        return {"accuracy": float((pred == targets).mean()),
                "f1": _f1_macro(pred, targets, outputs.shape[1]),
                "loss": F.cross_entropy(out_t, y_t.long()).item()}
    diff = outputs.astype(np.float64) - targets.reshape(outputs.shape)
    mse = float(np.mean(diff**2))
    if kind == "regression":
        return {"mse": mse, "mae": float(np.mean(np.abs(diff))), "loss": mse}
    return {"cosine": mean_cosine(outputs, targets), "top10": topk_agreement(outputs, targets),
            "loss": embedding_loss(out_t, y_t.float()).item()}


def call_metric(fn: Callable[[np.ndarray, np.ndarray], float], where: str,
                outputs: np.ndarray, targets: np.ndarray) -> float:
    """Call a user's metric function; a failure, a non-number or nan is the user's error,
    named by ``where`` (its reference)."""
    try:
        value = fn(outputs, targets)
    except Exception as err:
        raise TaskError(f"metric {where} raised {type(err).__name__}: {err}") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TaskError(f"metric {where} must return a number, got "
                        f"{type(value).__name__}") from None
    if number != number:
        raise TaskError(f"metric {where} returned nan")
    return number
