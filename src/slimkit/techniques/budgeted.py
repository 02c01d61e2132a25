"""Budgeted Optuna studies shared by the searching techniques (``tune``, ``arch``) and the
workers that join them.

The budget is a number of complete or pruned trials counted across every worker; failed trials
are recorded and retried. Trial numbers are handed out atomically by the storage, so a trial
can tell on its own whether it lies within the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from pydantic import Field, field_validator

from slimkit.core.durations import parse_duration
from slimkit.core.errors import TechniqueError
from slimkit.core.studies import counted, worker_id
from slimkit.techniques.base import TechniqueConfig
from slimkit.training.progress import CountProgress

ALIVE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
         optuna.trial.TrialState.RUNNING)
FAILURES_PER_TRIAL = 2  # a study stops when failures reach this many per budgeted trial (+10)


class StudyLimits(TechniqueConfig):
    """A study's wall-clock limit (``timeout``); subclasses say how many trials it runs."""

    timeout: str | float | None = Field(None, description="wall-clock limit, e.g. 15m")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | float | None) -> str | float | None:
        seconds = parse_duration(value)
        if seconds is not None and seconds <= 0:
            raise ValueError("must be > 0")
        return value

    @property
    def timeout_s(self) -> float | None:
        """The timeout in seconds (None: no limit)."""
        return parse_duration(self.timeout)

    @property
    def trial_budget(self) -> int:
        """Complete or pruned trials to run."""
        raise NotImplementedError


class BudgetReached(Exception):
    """Raised by a trial started when the budget was already taken by earlier trials."""


def start_trial(trial: optuna.Trial, budget: int) -> None:
    """Mark ``trial`` as this worker's and end it at once (a failed trial marked
    ``budget_reached``) when the live trials numbered before it already fill the budget."""
    trial.set_user_attr("worker", worker_id())
    ahead = [t for t in trial.study.get_trials(deepcopy=False, states=ALIVE)
             if t.number < trial.number]
    if len(ahead) >= budget:
        trial.set_user_attr("budget_reached", True)
        raise BudgetReached(f"{budget} trials already complete or running")


def recorded(trial: optuna.Trial, run: Callable[[], Any]) -> Any:
    """``run()``, with an unexpected failure recorded on the trial as ``error`` (Optuna marks
    the trial failed and the study goes on)."""
    try:
        return run()
    except (optuna.TrialPruned, BudgetReached):
        raise
    except Exception as err:
        trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
        raise


def failures(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Failed trials, without those that only found the budget spent."""
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
            if not t.user_attrs.get("budget_reached")]


def last_failure(study: optuna.Study) -> str:
    """The error of the latest failed trial ("-" if none failed)."""
    failed = failures(study)
    return str(failed[-1].user_attrs.get("error", "unknown"))[:200] if failed else "-"


def status(study: optuna.Study, shown: Callable[[float], str] | None = None) -> str:
    """A progress bar's text: the best value (``shown`` gives it its unit, e.g. ``val accuracy
    97.20%``), or the Pareto front's size, and failures."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    states = [t.state.name.lower() for t in done]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("pruned", "fail") if s in states)
    try:
        best = ((f"best {shown(study.best_value)}" if shown else f"best {study.best_value:.4g}")
                if len(study.directions) == 1
                else f"{len(study.best_trials)} on the Pareto front")
    except ValueError:  # no complete trial yet
        best = "no complete trial yet"
    return best + (f" ({counts})" if counts else "")


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], Any],
               limits: StudyLimits, progress: bool = False,
               shown: Callable[[float], str] | None = None) -> None:
    """Run trials until ``limits.trial_budget`` are complete or pruned (across every worker), the
    timeout passes, or a grid is exhausted. While the rest of the budget is in flight in other
    workers this one waits, and retries what a dead worker left (heartbeats fail its trial)."""
    budget = limits.trial_budget
    deadline = None if limits.timeout_s is None else time.monotonic() + limits.timeout_s
    stop_at_budget = optuna.study.MaxTrialsCallback(
        budget, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    with CountProgress(budget, f"study {study.study_name}", enabled=progress) as bar:
        bar.set(counted(study), status(study, shown))
        while counted(study) < budget:
            if len(failures(study)) >= FAILURES_PER_TRIAL * budget + 10:
                raise TechniqueError(f"{len(failures(study))} trials of {study.study_name} "
                                     f"failed; last error: {last_failure(study)}")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            running = study.get_trials(deepcopy=False,
                                       states=(optuna.trial.TrialState.RUNNING,))
            if counted(study) + len(running) >= budget:
                time.sleep(1.0)  # the rest of the budget is in flight in other workers
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial is retried
                continue
            study.optimize(objective, n_trials=1, timeout=left, callbacks=[stop_at_budget],
                           catch=(Exception,), gc_after_trial=False)
            bar.set(counted(study), status(study, shown))
