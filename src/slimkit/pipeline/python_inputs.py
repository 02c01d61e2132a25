"""The Python API's own objects (a model, data splits, a metric function) turned into the
references every other path uses (``python:...`` names that resolve in this process)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from slimkit.core.errors import SlimkitError, TaskError
from slimkit.core.usercode import load_function, register_callable
from slimkit.models.user import register_object
from slimkit.tasks.custom import to_arrays


@dataclass(frozen=True)
class PythonInputs:
    """What ``optimize``/``baseline`` receive after conversion."""

    task: str
    data: str | None
    metric: str | None
    model: str | None
    is_object: bool


def _data_digest(splits: dict[str, tuple[np.ndarray, np.ndarray] | None]) -> str:
    digest = hashlib.sha256()
    for name, arrays in splits.items():
        digest.update(name.encode())
        for array in arrays or ():
            digest.update(str((array.shape, array.dtype)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


def convert(task: str | nn.Module | None, model: str | None, train: Any, val: Any, test: Any,
            data: str | None, metric: str | Callable[..., Any] | None,
            example_input: Any) -> PythonInputs:
    """Register the Python objects given and return the references to them."""
    is_object = isinstance(task, nn.Module)
    if is_object:
        if model is not None:
            raise SlimkitError("give the model once: as the first argument or as model=")
        model = register_object(task)  # type: ignore[arg-type]
        task = "custom"
    elif task is not None and not isinstance(task, str):
        raise SlimkitError(f"task: expected a task name or a torch.nn.Module, got "
                           f"{type(task).__name__}")
    if train is not None or test is not None or val is not None:
        if data is not None:
            raise TaskError("give the data once: train/val/test or data=")
        if train is None or test is None:
            raise TaskError("train= and test= are both needed (val= may be None: 10% of "
                            "train is held out)")
        splits = {"train": to_arrays(train, "train"), "val": None if val is None else
                  to_arrays(val, "val"), "test": to_arrays(test, "test")}
        data = register_callable(lambda: dict(splits), "data", key=_data_digest(splits))
    elif is_object and data is None:
        raise TaskError("a model object needs its data: train=, val=, test= (or data=)")
    if data is not None:
        if task not in (None, "custom"):
            raise TaskError(f"your data makes the task custom: leave out task {task!r}")
        task = "custom"
    task = task or "mnist1d"
    if callable(metric):
        key = f"{getattr(metric, '__module__', '')}.{getattr(metric, '__qualname__', '')}"
        metric = register_callable(metric, "metric", key=key)
    if example_input is not None and data is not None:
        _check_example(example_input, data)
    assert isinstance(task, str)
    return PythonInputs(task=task, data=data, metric=metric, model=model, is_object=is_object)


def _check_example(example: Any, data: str) -> None:
    """The example input must look like a batch of the data's inputs."""
    shape = tuple(np.asarray(example.detach() if hasattr(example, "detach") else example).shape)
    splits = load_function(data, TaskError, "data")()
    train = splits["train"] if isinstance(splits, dict) else splits[0]
    expected = tuple(to_arrays(train, "train")[0].shape[1:])
    if shape[1:] != expected:
        raise TaskError(f"example_input has shape {shape}; the data's inputs are {expected} "
                        f"per sample, so expected (batch, {', '.join(map(str, expected))})")
