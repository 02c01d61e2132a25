"""Loading a task by name or by the source a run recorded (``Task.source``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from slimkit.core.errors import TaskError
from slimkit.tasks.base import CUSTOM, TASKS, Task, default_cache_dir
from slimkit.tasks.custom import load_custom
from slimkit.tasks.metrics import DIRECTIONS, KIND_METRICS


def load_task(source: str | dict[str, Any], seed: int = 0,
              cache_dir: str | Path | None = None) -> Task:
    """Load a task with splits seeded by ``seed``: a built-in by name, or a source
    ``{"name": ..., "data": "file.py:fn", "metric": ..., "direction": ...}`` as recorded in
    ``Task.source`` (``custom`` tasks, built-ins with another metric)."""
    source = {"name": source} if isinstance(source, str) else dict(source)
    name = source["name"]
    if name == CUSTOM:
        if not source.get("data"):
            raise TaskError("task custom needs your data: --data path/to/file.py:function")
        return load_custom(source["data"], seed, source.get("metric"), source.get("direction"),
                           source.get("model"))
    if source.get("data"):
        raise TaskError(f"--data is for --task custom (or no --task), not for task {name!r}")
    spec = TASKS.get(name)()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TaskError(f"cache folder {folder} cannot be created: {err.strerror}") from None
    task = spec.load(seed, folder)
    metric = source.get("metric")
    if metric and metric != task.metric:
        if metric not in KIND_METRICS[task.kind]:
            raise TaskError(f"--metric {metric!r}: task {name} is a {task.kind} task; choose "
                            f"{', '.join(KIND_METRICS[task.kind])}")
        task = replace(task, metric=metric, direction=DIRECTIONS[metric])
    return replace(task, source={"name": name, **({"metric": metric} if metric else {})})
