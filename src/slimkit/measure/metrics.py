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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from slimkit.tasks.base import Task

KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1"),
    "regression": ("mse", "mae"),
    "embedding": ("cosine", "top10"),
}
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


def task_metrics(outputs: np.ndarray, targets: np.ndarray, task: Task) -> dict[str, float]:
    """Every metric of ``task`` on one split: the kind's, and the task's own metric."""
    values = kind_metrics(outputs, targets, task.kind)
    if task.metric_fn is not None:
        values[task.metric] = user_metric(task, outputs, targets)
    return values


def user_metric(task: Task, outputs: np.ndarray, targets: np.ndarray) -> float:
    """Call the user's metric function; a failure or a non-number is the user's error."""
    from slimkit.errors import TaskError

    assert task.metric_fn is not None
    where = task.source.get("metric", task.metric)
    try:
        value = task.metric_fn(outputs, targets)
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


def output_fidelity(got: np.ndarray, expected: np.ndarray, kind: str) -> dict[str, Any]:
    """How close a reduced-precision model's outputs are to the float model's: agreement of
    predicted classes, mean cosine of embeddings, or the relative mean absolute error."""
    diff = float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0
    record: dict[str, Any] = {"max_abs_diff": diff, "samples": len(got)}
    if kind == "classification":
        agreement = float((got.argmax(1) == expected.argmax(1)).mean())
        return {"check": "class_agreement", "agreement": agreement, **record}
    if kind == "embedding":
        return {"check": "cosine", "cosine": mean_cosine(got, expected), **record}
    scale = float(np.mean(np.abs(expected))) or 1.0
    rel = float(np.mean(np.abs(got.astype(np.float64) - expected))) / scale
    return {"check": "relative_mae", "relative_mae": rel, **record}
