"""Reading the search's trials: measured chains, the feasible front, finalists, run.json rows."""

from __future__ import annotations

from typing import Any

import optuna

from slimkit.core.objectives import OBJECTIVES
from slimkit.pipeline.search.config import SearchConfig
from slimkit.pipeline.search.objective import CONSTRAINT


def is_new(trial: optuna.trial.FrozenTrial) -> bool:
    """A complete trial that ran its chain (not a repeat of an earlier one)."""
    return (trial.state == optuna.trial.TrialState.COMPLETE
            and "duplicate_of" not in trial.user_attrs)


def feasible_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal trials meeting the accuracy constraint (Optuna's own front)."""
    return [t for t in study.best_trials if t.user_attrs.get("steps")]


def finalists(study: optuna.Study, config: SearchConfig) -> list[optuna.trial.FrozenTrial]:
    """The best feasible trials on the objective (ties: better val metric)."""
    front = feasible_front(study)
    sign = 1.0 if OBJECTIVES[config.objective].direction == "minimize" else -1.0
    acc_sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    front.sort(key=lambda t: (sign * t.values[1], acc_sign * t.values[0]))
    chosen: list[optuna.trial.FrozenTrial] = []
    for trial in front:
        if all(trial.params != other.params for other in chosen):
            chosen.append(trial)
    return chosen[: config.finalists]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every finished trial that measured a chain (or failed), compactly, for run.json."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("budget_reached") or not t.state.is_finished():
            continue
        if "duplicate_of" in t.user_attrs:
            continue
        rows.append({"number": t.number, "state": t.state.name.lower(),
                     "chain": t.user_attrs.get("label"), "values": t.values,
                     "constraint": t.constraints.get(CONSTRAINT) if t.constraints else None,
                     "seconds": t.user_attrs.get("trial_seconds"),
                     "worker": t.user_attrs.get("worker"), "error": t.user_attrs.get("error")})
    return rows
