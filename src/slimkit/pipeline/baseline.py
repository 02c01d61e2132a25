"""Step 1: train the baseline candidate ``c0`` of a new run, measure it and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from slimkit.errors import RecipeError
from slimkit.measure.profile import environment
from slimkit.measure.timing import ProfileSettings
from slimkit.models import build_model, model_config
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.run import Run
from slimkit.pipeline.store import prepare_folder, write_manifest
from slimkit.tasks import TASKS, load_task
from slimkit.training import TrainConfig, fit
from slimkit.validation import validate


def baseline(
    task: str = "mnist1d",
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
) -> Run:
    """Train ``model`` (default: the task's) on ``task``, measure and export it into ``out``.

    Returns the finished Run, whose baseline and selected candidate is ``c0``.
    """
    spec = TASKS.get(task)
    family = model or spec.default_model
    margs = model_config(family, model_args).model_dump()
    tconf = train if isinstance(train, TrainConfig) else validate(
        TrainConfig, dict(train or {}), prefix="train", error=RecipeError)
    settings = (profile or ProfileSettings()).model_copy(update={"threads": threads})
    data = load_task(task, seed=seed, cache_dir=cache_dir)
    torch.manual_seed(seed)
    net = build_model(family, margs, data.input_shape, data.num_classes)
    folder = prepare_folder(out)  # only after every input is known to be valid
    run = Run(
        run=folder.name, task=task, seed=seed, env=environment(threads),
        task_spec=data.spec(), path=folder,
        config={"model": family, "model_args": margs, "train": tconf.model_dump(),
                "profile": settings.model_dump()},
    )
    write_manifest(run)
    result = fit(net, data, tconf, seed=seed, progress=progress, description="baseline")
    model_spec = {"family": family, "args": margs, "input_shape": list(data.input_shape),
                  "num_classes": data.num_classes}
    candidate = materialize("c0", None, "train", tconf.model_dump(), net, model_spec, data,
                            folder, settings, training=result.to_dict())
    run.candidates = [candidate]
    run.baseline = run.selected = "c0"
    run.pareto = ["c0"]
    run.status = "complete"
    write_manifest(run)
    return run
