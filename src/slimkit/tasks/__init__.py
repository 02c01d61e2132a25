"""Built-in tasks. Importing this package registers them."""

from slimkit.tasks import (  # noqa: F401  (registers them)
    diabetes,
    digits,
    forecast,
    minilm,
    mnist1d,
)
from slimkit.tasks.base import (
    CUSTOM,
    TASKS,
    Split,
    Task,
    TaskSpec,
    default_cache_dir,
    task_names,
)
from slimkit.tasks.load import load_task

__all__ = ["CUSTOM", "TASKS", "Split", "Task", "TaskSpec", "default_cache_dir", "load_task",
           "task_names"]
