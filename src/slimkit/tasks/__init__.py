"""Built-in tasks. Importing this package registers them."""

from slimkit.tasks import diabetes, digits, minilm, mnist1d  # noqa: F401  (registers them)
from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, default_cache_dir, load_task

__all__ = ["TASKS", "Split", "Task", "TaskSpec", "default_cache_dir", "load_task"]
