"""Step 1: train the baseline candidate ``c0`` of a new run, measure it and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.errors import RecipeError
from slimkit.measure.timing import ProfileSettings
from slimkit.models import model_config
from slimkit.pipeline.engine import run_recipe
from slimkit.pipeline.run import Run
from slimkit.pipeline.store import prepare_folder
from slimkit.recipe import load_recipe
from slimkit.tasks import TASKS
from slimkit.training import TrainConfig
from slimkit.validation import validate


def baseline(
    task: str | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    train: dict[str, Any] | TrainConfig | None = None,
    *,
    out: str | Path,
    seed: int = 0,
    threads: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    profile: ProfileSettings | None = None,
    data: str | None = None,
    metric: str | None = None,
    metric_direction: str | None = None,
) -> Run:
    """Train ``model`` (default: the task's) on ``task``, measure and export it into ``out``.

    ``data`` (``file.py:load_data``) makes the task ``custom``; ``model`` may be
    ``file.py:build_model``; ``metric``/``metric_direction`` pick the metric that decides.
    The same as a recipe without steps. Returns the finished Run; its baseline and selected
    candidate is ``c0``. A folder holding a finished run or other files is refused.
    """
    from slimkit.usercode import absolute, is_reference

    if isinstance(train, TrainConfig):
        train = train.model_dump()
    task = task or ("custom" if data else "mnist1d")
    refs = {"data": data, "metric": metric, "model": model}
    refs = {k: absolute(v) if v and is_reference(v) else v for k, v in refs.items()}
    # validate with the names the caller used (model.width, train.lr) before the recipe does
    if task in TASKS:
        model_config(refs["model"] or TASKS.get(task).default_model, model_args)
    validate(TrainConfig, dict(train or {}), prefix="train", error=RecipeError)
    settings = profile.model_dump(exclude={"threads"}) if profile else {}
    extra = {k: v for k, v in (("data", refs["data"]), ("metric", refs["metric"]),
                               ("metric_direction", metric_direction)) if v}
    recipe = load_recipe({
        "version": 1, "task": task, **extra, "seed": seed, "threads": threads,
        "profile": settings,
        "baseline": {"model": refs["model"], "model_args": model_args or {},
                     "train": train or {}},
    })
    prepare_folder(out)
    return run_recipe(recipe, out, cache_dir=cache_dir, progress=progress)
