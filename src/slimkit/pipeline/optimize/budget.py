"""The wall-clock budget of ``optimize``: a plan that fits the tuning pass and the search's
trial epochs into the budget (re-made as real timings arrive), the one refusal (a budget the
baseline alone cannot fit) and the clock that carries the time spent across resumes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from slimkit.core.errors import SlimkitError
from slimkit.core.runs import Candidate, Run
from slimkit.measure.evaluate import trim_padding
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.optimize.config import TUNE_SHARE, OptimizeConfig
from slimkit.tasks import Task
from slimkit.tasks.metrics import training_loss
from slimkit.training import TrainConfig

SEARCH_TRIALS = 10  # the search's trial epochs are cut so that this many trials fit


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def epoch_seconds(model: torch.nn.Module, task: Task, train: TrainConfig) -> float:
    """Seconds per training epoch of ``model``, timed on a few real batches."""
    model = model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = np.arange(min(train.batch_size, len(task.train.x)))
    if task.token_inputs:  # training trims padding from length-bucketed batches: typical rows
        lengths = (task.train.x != 0).sum(axis=1)
        rows = np.argsort(np.abs(lengths - lengths.mean()), kind="stable")[: len(rows)]
    x = torch.from_numpy(trim_padding(task.train.x[rows]) if task.token_inputs
                         else task.train.x[rows])
    y = torch.from_numpy(task.train.y[rows])
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


@dataclass(frozen=True)
class Costs:
    """What the phases cost, in seconds: one epoch, one training of the baseline (a tuning
    trial costs about as much), a full measurement and a trial's quick one."""

    epoch_s: float
    train_s: float
    measure_s: float
    quick_s: float
    source: str  # "estimate" (timed up front, every epoch run) or the candidate measured

    @classmethod
    def up_front(cls, config: OptimizeConfig, epoch_s: float, epochs: int) -> Costs:
        """Upper bounds before anything ran: every epoch of the baseline runs."""
        settings = ProfileSettings(**{"threads": config.threads, **config.profile})
        return cls(epoch_s, epochs * epoch_s,
                   measure_s=4 * max(settings.min_seconds, 0.2) + 4.0,  # 2 backends x 2 batches
                   quick_s=2 * max(settings.quick().min_seconds, 0.1) + 3.0, source="estimate")

    def measured(self, candidate: Candidate) -> Costs:
        """These costs with the real timings of ``candidate`` (early stopping included)."""
        timing = candidate.timing
        if not timing:
            return self
        measure_s = float(timing.get("measure_s", self.measure_s))
        epochs = int((candidate.training or {}).get("epochs_run") or 0)
        if not timing.get("train_s") or epochs < 1:  # not trained (as given): its measuring
            return replace(self, measure_s=measure_s, source=candidate.id)
        return Costs(float(timing["train_s"]) / epochs, float(timing["train_s"]), measure_s,
                     self.quick_s, candidate.id)


@dataclass
class Plan:
    """How the budget is spent: tuning trials, the epochs a search trial trains, and what was
    cut from what the user asked for."""

    tune_trials: int
    trial_epochs: int
    finalists: int = 1
    cuts: list[str] = field(default_factory=list)
    costs: Costs | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plan as recorded in run.json (``config.plan``)."""
        costs = self.costs
        return {"tune_trials": self.tune_trials, "trial_epochs": self.trial_epochs,
                "finalists": self.finalists, "cuts": list(self.cuts),
                "epoch_s": round(costs.epoch_s, 4) if costs else None,
                "timed_on": costs.source if costs else None}

    def summary(self, budget: str | float) -> str:
        """One line for the terminal when something was cut."""
        per_epoch = f", {self.costs.epoch_s:.2g} s per epoch" if self.costs else ""
        return f"optimize: planned for --budget {budget}{per_epoch}: {'; '.join(self.cuts)}"


def plan(config: OptimizeConfig, costs: Costs, left_s: float, tuning: bool) -> Plan:
    """Fit what is still to run into ``left_s`` seconds: the finalists' measurement takes at
    most half of it (fewer finalists); the tuning pass (when ``tuning``) gets up to its share of
    the budget and at most half of the rest; a search trial trains at most as many epochs as
    let ``SEARCH_TRIALS`` trials (or the user's ``trials``, if fewer) fit in what remains."""
    cuts: list[str] = []
    finalists = max(1, min(config.finalists,
                           int(left_s / 2 // max(reserve(1, costs.measure_s), 1e-9))))
    if finalists < config.finalists:
        cuts.append(f"{finalists} of {config.finalists} finalists measured in full")
    search_s = left_s - reserve(finalists, costs.measure_s)
    tune_trials = 0
    if tuning and config.tune_trials:
        share = min(TUNE_SHARE * config.budget_s, search_s / 2)
        fits = int((share - costs.measure_s) // max(costs.train_s, 1e-9)) - 1  # + the retrain
        tune_trials = max(0, min(config.tune_trials, fits))
        if tune_trials < config.tune_trials:
            cuts.append(f"tuning {tune_trials} of {config.tune_trials} trials" if tune_trials
                        else f"no tuning pass (its {config.tune_trials} trials do not fit)")
        if tune_trials:
            search_s -= (tune_trials + 1) * costs.train_s + costs.measure_s
    trials = min(SEARCH_TRIALS, config.trials or SEARCH_TRIALS)  # --trials caps the search
    per_trial = search_s / trials - 2 * costs.quick_s
    epochs = max(1, min(config.epochs, int(per_trial // max(costs.epoch_s, 1e-9))))
    if epochs < config.epochs:
        cuts.append(f"search trials train {epochs} of {config.epochs} epochs")
    return Plan(tune_trials, epochs, finalists, cuts, costs)


def check_baseline_fits(config: OptimizeConfig, costs: Costs) -> None:
    """Refuse a budget that cannot fit the baseline alone (everything else is planned)."""
    needed = costs.train_s + costs.measure_s
    if config.budget_s < needed:
        raise SlimkitError(
            f"--budget {config.budget}: the baseline alone needs up to {_fmt(needed)} "
            f"(training ~{_fmt(costs.train_s)} at {costs.epoch_s:.2g} s per epoch, measuring "
            f"~{_fmt(costs.measure_s)}); give --budget {int(needed // 60) + 1}m or more, or "
            f"fewer epochs (--set train.epochs=N)")


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
