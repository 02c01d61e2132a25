"""The Task type: named splits, input/output spec, primary metric and default model."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.errors import TaskError
from slimkit.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32, shape ``(n, *input_shape)``) and integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Task:
    """A learning problem. ``test`` is only ever reported, never used to train, tune or select."""

    name: str
    splits: dict[str, Split]
    input_shape: tuple[int, ...]
    num_classes: int
    default_model: str
    metric: str = "accuracy"
    direction: str = "maximize"
    seed: int = 0

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def spec(self) -> dict[str, Any]:
        """The input/output spec as plain data (for run.json and serving)."""
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": "float32",
            "num_classes": self.num_classes,
            "metric": self.metric,
            "direction": self.direction,
            "sizes": {name: len(split) for name, split in self.splits.items()},
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


def load_task(name: str, seed: int = 0, cache_dir: str | Path | None = None) -> Task:
    """Load the built-in task ``name`` with splits seeded by ``seed``."""
    spec = TASKS.get(name)()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TaskError(f"cache folder {folder} cannot be created: {err.strerror}") from None
    return spec.load(seed, folder)


def carve_val(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split (x, y) into train and a stratified validation part of ``fraction``, seeded."""
    from sklearn.model_selection import train_test_split

    x_tr, x_val, y_tr, y_val = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=y
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
