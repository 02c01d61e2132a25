"""The wall-clock budget of ``optimize``: an up-front estimate that refuses a budget too short
for one search trial, and the clock that carries the time spent across resumes."""

from __future__ import annotations

import time

import torch

from slimkit.core.errors import SlimkitError
from slimkit.core.runs import Run
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.engine import baseline_model
from slimkit.pipeline.optimize.config import OptimizeConfig
from slimkit.pipeline.recipe import Recipe
from slimkit.tasks import Task
from slimkit.tasks.metrics import training_loss
from slimkit.training import TrainConfig


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def epoch_seconds(model: torch.nn.Module, task: Task, train: TrainConfig) -> float:
    """Seconds per training epoch of ``model``, timed on a few real batches."""
    model = model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.from_numpy(task.train.x[: train.batch_size])
    y = torch.from_numpy(task.train.y[: train.batch_size])
    loss = training_loss(task.kind)
    times = []
    begin = time.perf_counter()
    while len(times) < 10 and (len(times) < 3 or time.perf_counter() - begin < 2.0):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    batches = -(-len(task.train.x) // train.batch_size) + -(-len(task.val.x) // 512)
    return min(times[2:] or times) * batches


def reserve(finalists: int, measure_s: float) -> float:
    """Seconds kept for measuring the finalists in full (each chain has up to two links)."""
    return 2 * finalists * measure_s


def estimate(config: OptimizeConfig, task: Task, recipe: Recipe,
             epoch_s: float | None = None) -> dict[str, float]:
    """Upper-bound seconds of each phase up to one search trial (early stopping only
    shortens them); ``epoch_s`` is the measured seconds per epoch (timed here if None)."""
    train = TrainConfig(**{**task.default_train, **config.train})
    if epoch_s is None:
        epoch_s = epoch_seconds(baseline_model(recipe, task)[0], task, train)
    settings = ProfileSettings(threads=config.threads, **config.profile)
    measure = 4 * max(settings.min_seconds, 0.2) + 4.0  # 2 backends x 2 batches + export
    quick = 2 * max(settings.quick().min_seconds, 0.1) + 3.0
    phases = {"baseline": train.epochs * epoch_s + measure}
    if config.tune_trials:
        phases["tuning"] = (config.tune_trials + 1) * train.epochs * epoch_s + measure
    phases["one trial"] = config.epochs * epoch_s + 2 * quick
    phases["final measurement"] = reserve(config.finalists, measure)
    return phases


def check_budget(config: OptimizeConfig, phases: dict[str, float]) -> None:
    """Refuse a budget that cannot fit the baseline, the tuning pass and one search trial."""
    needed = sum(phases.values())
    if config.budget_s < needed:
        parts = ", ".join(f"{k} ~{_fmt(v)}" for k, v in phases.items())
        hint = " or fewer --tune-trials" if config.tune_trials else ""
        raise SlimkitError(f"--budget {config.budget}: cannot fit one search trial; the "
                           f"estimate is {_fmt(needed)} ({parts}); give --budget "
                           f"{int(needed // 60) + 1}m or more{hint}")


class Clock:
    """Wall-clock spent by this run, across resumes."""

    def __init__(self, run: Run, budget_s: float) -> None:
        self.before = float(run.config.get("optimize_spent_s", 0.0))
        self.start = time.monotonic()
        self.budget_s = budget_s

    def spent(self) -> float:
        """Seconds spent by this run so far, earlier sessions included."""
        return self.before + time.monotonic() - self.start

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - self.spent()
