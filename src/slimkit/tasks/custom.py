"""A task made from the user's own data function (``--data path/to/file.py:load_data``).

The function takes no argument (or ``seed``) and returns the splits ``train``, ``val`` and
``test`` as a dict or a 3-tuple; each split is ``(x, y)`` numpy arrays or tensors, a torch
``Dataset`` of ``(x, y)`` items, or a ``DataLoader`` of ``(x, y)`` batches. ``val`` may be None:
10% of train is carved off, seeded. Integer targets make a classification task, float targets a
regression task. The metric is a built-in one of the kind (``accuracy``, ``f1``; ``mse``,
``mae``) or the user's ``fn(outputs, targets) -> float`` with its direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from slimkit.core.errors import TaskError
from slimkit.core.usercode import accepted, call, is_reference, load_function
from slimkit.tasks.base import CUSTOM, SPLITS, Split, Task, carve_val
from slimkit.tasks.metrics import DIRECTIONS, KIND_METRICS, kind_of_metric
from slimkit.tasks.text import TEXT_THROUGHPUT_BATCH, is_text_split, text_arrays

VAL_FRACTION = 0.1


def _array(value: Any, what: str) -> np.ndarray:
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)
    except Exception as err:
        raise TaskError(f"{what}: cannot be read as an array ({err})") from None


def _stack(items: list[Any], what: str) -> np.ndarray:
    return np.stack([_array(item, what) for item in items])


def _from_loader(loader: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TaskError(f"{what}: a DataLoader must yield (x, y) batches")
        xs.append(_array(batch[0], what))
        ys.append(_array(batch[1], what))
    if not xs:
        raise TaskError(f"{what}: the DataLoader is empty")
    return np.concatenate(xs), np.concatenate(ys)


def _from_dataset(dataset: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise TaskError(f"{what}: the Dataset is empty")
    if any(not isinstance(it, (tuple, list)) or len(it) != 2 for it in items[:1]):
        raise TaskError(f"{what}: Dataset items must be (x, y) pairs")
    return _stack([it[0] for it in items], what), _stack([it[1] for it in items], what)


def to_arrays(split: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` numpy arrays from any of the accepted split forms."""
    if isinstance(split, DataLoader):
        x, y = _from_loader(split, what)
    elif isinstance(split, Dataset):
        x, y = _from_dataset(split, what)
    elif isinstance(split, (tuple, list)) and len(split) == 2:
        x, y = _array(split[0], what), _array(split[1], what)
    else:
        raise TaskError(f"{what}: expected (x, y) arrays, a torch Dataset or a DataLoader, got "
                        f"{type(split).__name__}")
    if x.ndim < 2 or len(x) != len(y):
        raise TaskError(f"{what}: x has shape {x.shape} and y {y.shape}; expected x of shape "
                        f"(n, *features) and y of length n")
    return x, y


def _splits(value: Any, ref: str) -> dict[str, Any]:
    if isinstance(value, dict):
        missing = [s for s in ("train", "test") if s not in value]
        extra = sorted(set(value) - set(SPLITS))
        if missing or extra:
            raise TaskError(f"--data {ref} returned a dict with keys {sorted(value)}; expected "
                            f"train, val (may be None) and test")
        return {s: value.get(s) for s in SPLITS}
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return dict(zip(SPLITS, value, strict=True))
    raise TaskError(f"--data {ref} returned {type(value).__name__}; expected a dict "
                    f"{{'train': ..., 'val': ..., 'test': ...}} or a (train, val, test) tuple")


def _kind(ys: list[np.ndarray], ref: str) -> str:
    if all(np.issubdtype(y.dtype, np.integer) or y.dtype == bool for y in ys):
        return "classification"
    if all(np.issubdtype(y.dtype, np.floating) for y in ys):
        return "regression"
    kinds = sorted({str(y.dtype) for y in ys})
    raise TaskError(f"--data {ref}: targets must be integer class labels (classification) or "
                    f"floats (regression) in every split, got {', '.join(kinds)}")


def _metric(metric: str | None, direction: str | None, kind: str, ref: str
            ) -> tuple[str, str, Any]:
    """(name, direction, user function or None) of the task's metric."""
    if metric is None:
        metric = KIND_METRICS[kind][0]
    if is_reference(metric):
        fn = load_function(metric, TaskError, "--metric")
        if direction not in ("maximize", "minimize"):
            raise TaskError(f"--metric {metric}: give its direction with --metric-direction "
                            f"maximize or minimize")
        return metric.rpartition(":")[2], direction, fn
    owner = kind_of_metric(metric)
    if owner is None:
        choices = ", ".join(KIND_METRICS[kind])
        raise TaskError(f"--metric {metric!r}: unknown; for a {kind} task choose {choices}, or "
                        f"give your own as path/to/file.py:function")
    if owner != kind:
        raise TaskError(f"--metric {metric}: is a {owner} metric, but --data {ref} gives a "
                        f"{kind} task; choose {', '.join(KIND_METRICS[kind])}")
    if direction is not None and direction != DIRECTIONS[metric]:
        raise TaskError(f"--metric-direction {direction}: {metric} is always "
                        f"{DIRECTIONS[metric]}d")
    return metric, DIRECTIONS[metric], None


def load_custom(data: str, seed: int, metric: str | None = None,
                direction: str | None = None, model: str | None = None) -> Task:
    """Build a Task from the user's data function ``data`` (an absolute reference); texts are
    tokenized by the tokenizer of ``model`` (``hf:PATH``, see ``slimkit.tasks.text``)."""
    fn = load_function(data, TaskError, "--data")
    names, any_kwargs = accepted(fn)
    kwargs = {"seed": seed} if "seed" in names or any_kwargs else {}
    raw = _splits(call(fn, data, TaskError, **kwargs), data)
    if any(is_text_split(v) for v in raw.values() if v is not None):
        return _text_task(raw, data, seed, metric, direction, model)
    arrays = {s: to_arrays(v, f"--data {data}: split {s!r}") for s, v in raw.items()
              if v is not None}
    kind = _kind([y for _, y in arrays.values()], data)
    if "val" not in arrays:
        x, y = arrays["train"]
        stratify = kind == "classification"
        train, val = carve_val(x, y, VAL_FRACTION, seed, stratify=stratify)
        arrays["train"], arrays["val"] = (train.x, train.y), (val.x, val.y)
    shapes = {s: x.shape[1:] for s, (x, _) in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise TaskError(f"--data {data}: splits have different input shapes: "
                        + ", ".join(f"{s} {v}" for s, v in shapes.items()))
    splits = {}
    for name in SPLITS:
        x, y = arrays[name]
        # features are float32, integer ones too: int64 2-D inputs mean token ids (0 = padding)
        # to the exporter and the evaluator, which a user's feature columns are not
        x = x.astype(np.float32)
        if kind == "classification":
            y = y.astype(np.int64).reshape(-1)
        else:
            y = y.astype(np.float32).reshape(len(y), -1)
        splits[name] = Split(np.ascontiguousarray(x), y)
    if kind == "classification":
        if min(int(s.y.min()) for s in splits.values()) < 0:
            raise TaskError(f"--data {data}: class labels must be 0, 1, ..., got a negative one")
        outputs = max(int(s.y.max()) for s in splits.values()) + 1
    else:
        widths = {s.y.shape[1] for s in splits.values()}
        if len(widths) != 1:
            raise TaskError(f"--data {data}: splits have different numbers of targets {widths}")
        outputs = widths.pop()
    name, direction, metric_fn = _metric(metric, direction, kind, data)
    dtype = str(splits["train"].x.dtype)
    return Task(name=CUSTOM, splits=splits, input_shape=tuple(splits["train"].x.shape[1:]),
                num_classes=outputs, default_model="", metric=name, direction=direction,
                seed=seed, kind=kind, input_dtype=dtype, metric_fn=metric_fn,
                source={"name": CUSTOM, "data": data, "metric": metric,
                        "direction": direction})


# texts only: the folder's model as given is the baseline; fine-tuning (a pruned or distilled
# candidate) starts from pretrained weights, at a pretrained model's learning rate
PRETRAINED_TRAIN = {"epochs": 0, "lr": 5e-5}


def _text_task(raw: dict[str, Any], data: str, seed: int, metric: str | None,
               direction: str | None, model: str | None) -> Task:
    """A task of texts: token ids in, labels or the folder's own embeddings as targets."""
    arrays, kind, outputs, vocab = text_arrays(raw, data, model)
    if "val" not in arrays:
        x, y = arrays["train"]
        train, val = carve_val(x, y, VAL_FRACTION, seed, stratify=kind == "classification")
        arrays["train"], arrays["val"] = (train.x, train.y), (val.x, val.y)
    splits = {name: Split(np.ascontiguousarray(x), y) for name, (x, y) in arrays.items()}
    name, direction, metric_fn = _metric(metric, direction, kind, data)
    return Task(name=CUSTOM, splits=splits, input_shape=tuple(splits["train"].x.shape[1:]),
                num_classes=outputs, default_model=model or "", metric=name,
                direction=direction, seed=seed, kind=kind, input_dtype="int64",
                input_high=vocab, throughput_batch=TEXT_THROUGHPUT_BATCH, metric_fn=metric_fn,
                default_train=PRETRAINED_TRAIN if kind == "embedding" else {},
                source={"name": CUSTOM, "data": data, "metric": metric,
                        "direction": direction, "model": model})
