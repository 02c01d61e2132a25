"""The Task type: named splits, input/output spec, primary metric and default model."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from slimkit.core.errors import TaskError
from slimkit.core.registry import Registry
from slimkit.tasks.metrics import call_metric, kind_metrics

SPLITS = ("train", "val", "test")
CUSTOM = "custom"  # the task made from the user's data function (--data file.py:fn)


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (shape ``(n, *input_shape)``, float32 or int64 token ids) and targets ``y``:
    integer labels ``(n,)`` for classification, float32 ``(n, outputs)`` otherwise."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Task:
    """A learning problem. ``test`` is only ever reported, never used to train, tune or select.

    ``num_classes`` is the number of outputs per sample: classes (classification), targets
    (regression) or embedding dimensions (embedding). ``kind`` decides the training loss and the
    standard metrics; ``metric_fn`` is a user's metric ``fn(outputs, targets) -> float``.
    ``source`` says how to load the task again (in another process: a worker, ``export``).
    """

    name: str
    splits: dict[str, Split]
    input_shape: tuple[int, ...]
    num_classes: int
    default_model: str
    metric: str = "accuracy"
    direction: str = "maximize"
    seed: int = 0
    kind: str = "classification"
    input_dtype: str = "float32"
    input_high: int | None = None  # int64 inputs: profiled with ids drawn in [1, input_high)
    throughput_batch: int | None = None  # the task's throughput batch (default: the profile's)
    metric_fn: Callable[[np.ndarray, np.ndarray], float] | None = field(default=None,
                                                                         repr=False)
    source: dict[str, Any] = field(default_factory=dict)
    default_train: dict[str, Any] = field(default_factory=dict)  # e.g. pretrained: epochs 0

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    @property
    def token_inputs(self) -> bool:
        """Inputs are token ids (0 = padding) drawn from a vocabulary of ``input_high``."""
        return self.input_dtype == "int64" and self.input_high is not None

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Every metric of this task for ``outputs`` against ``targets``: its kind's standard
        metrics and loss, and its own metric function if it has one."""
        values = kind_metrics(outputs, targets, self.kind)
        if self.metric_fn is not None:
            where = str(self.source.get("metric", self.metric))
            values[self.metric] = call_metric(self.metric_fn, where, outputs, targets)
        return values

    def spec(self) -> dict[str, Any]:
        """The input/output spec as plain data (for run.json and serving)."""
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "num_classes": self.num_classes,
            "kind": self.kind,
            "metric": self.metric,
            "direction": self.direction,
            "sizes": {name: len(split) for name, split in self.splits.items()},
            "source": self.source or {"name": self.name},
        }


class TaskSpec(ABC):
    """A registered built-in task. Subclasses set the class attributes and implement ``load``."""

    name: str = ""
    description: str = ""
    default_model: str = ""
    metric: str = "accuracy"

    @abstractmethod
    def load(self, seed: int, cache_dir: Path) -> Task:
        """Build the task's splits (val carved with ``seed``), generating or caching data."""


TASKS: Registry[type[TaskSpec]] = Registry("task", TaskError)


def default_cache_dir() -> Path:
    """``$SLIMKIT_CACHE_DIR`` if set, else ``~/.cache/slimkit``."""
    env = os.environ.get("SLIMKIT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "slimkit"


def task_names() -> list[str]:
    """Every task name a recipe or flag may give: the built-ins and ``custom``."""
    return [*TASKS.names(), CUSTOM]


def carve_val(x: np.ndarray, y: np.ndarray, fraction: float, seed: int,
              stratify: bool = True) -> tuple[Split, Split]:
    """Split (x, y) into train and a validation part of ``fraction`` (stratified by class
    unless ``stratify`` is false), seeded."""
    x_tr, x_val, y_tr, y_val = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=y if stratify else None
    )
    return Split(x_tr, y_tr), Split(x_val, y_val)


def cached_arrays(path: Path, make: Any) -> dict[str, np.ndarray]:
    """Load arrays from ``path`` (npz) or create them with ``make()`` and save them atomically."""
    if path.exists():
        try:
            with np.load(path) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a corrupt cache is regenerated, never trusted
    arrays = make()
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays
