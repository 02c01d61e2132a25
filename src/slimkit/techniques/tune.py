"""``tune``: search training and model hyperparameters with Optuna.

Samplers, pruners, storage, heartbeats and the artifact store are Optuna's. slimkit supplies the
objective (train from scratch with the sampled values, reporting the validation metric every
epoch so a pruner can stop bad trials), keeps the budget across resumes and workers
(``techniques.trials``), and retrains the best parameters as a measured candidate.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import optuna
import torch
from pydantic import Field, model_validator

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.core.studies import (
    artifact_store,
    counted,
    default_url,
    make_sampler,
    open_storage,
    recover_interrupted,
    resume_sampler,
    upload,
)
from slimkit.measure.format import fmt_metric, fmt_ms
from slimkit.measure.profile import onnx_latency
from slimkit.measure.timing import ProfileSettings
from slimkit.models import MODEL_FILE, build_model, find_family, save_model
from slimkit.tasks import Task
from slimkit.techniques.base import Context, Technique, register_technique
from slimkit.techniques.budgeted import StudyLimits, last_failure, recorded, run_trials, start_trial
from slimkit.techniques.space import Range, suggest
from slimkit.training import TrainConfig, fit


class TuneConfig(StudyLimits):
    """The search space, sampler, pruner, objectives and trainer defaults of a tune step."""

    sampler: Literal["grid", "random", "tpe", "gp", "cmaes", "nsga2"] = Field(
        "tpe", description="Optuna sampler (grid: every point of the space once)")
    trials: int = Field(20, ge=1, le=100000, description="complete + pruned trials")
    pruner: Literal["none", "median", "hyperband"] = Field(
        "median", description="stops trials that fall behind, from their per-epoch val metric")
    space: dict[str, Range] = Field(min_length=1, description="train.<p> / model.<p> ranges")
    objectives: list[Literal["accuracy", "latency"]] = Field(
        default_factory=lambda: ["accuracy"], min_length=1, max_length=2,
        description="what trials are ranked by (two: a Pareto front)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="trainer defaults")

    @model_validator(mode="after")
    def _check(self) -> TuneConfig:
        for key, dim in self.space.items():
            section, _, name = key.partition(".")
            if section not in ("train", "model") or not name:
                raise ValueError(f"space.{key}: expected train.<param> or model.<param>")
            if section == "train" and name not in TrainConfig.model_fields:
                allowed = ", ".join(TrainConfig.model_fields)
                raise ValueError(f"space.{key}: unknown trainer parameter; allowed: {allowed}")
            if self.sampler == "grid" and dim.grid() is None:
                raise ValueError(f"space.{key}: grid search needs choices or a step, got the "
                                 f"continuous range [{dim.low}, {dim.high}]")
        if len(self.objectives) > 1 and self.sampler == "cmaes":
            raise ValueError("sampler cmaes is single-objective; use nsga2 or tpe")
        return self

    @property
    def trial_budget(self) -> int:
        """``trials``, or fewer when a grid has fewer points."""
        if self.sampler != "grid":
            return self.trials
        points = 1
        for dim in self.space.values():
            points *= len(dim.grid() or [])
        return min(self.trials, points)


def tune_sampler(config: TuneConfig, seed: int, study: optuna.Study | None = None
                 ) -> optuna.samplers.BaseSampler:
    """The configured sampler (a grid sampler gets the grid of ``space``); given the ``study``
    it samples for, moved past the points its trials already drew (``resume_sampler``)."""
    grid = ({k: v.grid() for k, v in config.space.items()} if config.sampler == "grid"
            else None)
    if study is not None:
        return resume_sampler(config.sampler, seed, study, grid=grid)  # type: ignore[arg-type]
    return make_sampler(config.sampler, seed, grid=grid)  # type: ignore[arg-type]


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (none for multi-objective studies, which Optuna cannot prune)."""
    if config.pruner == "none" or len(config.objectives) > 1:
        return optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def split_params(values: dict[str, Any], config: TuneConfig, spec: dict[str, Any]
                 ) -> tuple[dict[str, Any], TrainConfig]:
    """(model args, trainer config) for one set of sampled values."""
    model_args = dict(spec["args"])
    train = config.train.model_dump()
    for key, value in values.items():
        section, _, name = key.partition(".")
        (model_args if section == "model" else train)[name] = value
    return model_args, TrainConfig(**train)


class TuneObjective:
    """Train the parent's family from scratch with one trial's values; works in any worker."""

    def __init__(self, config: TuneConfig, spec: dict[str, Any], task: Task, seed: int,
                 artifacts: Path, settings: ProfileSettings) -> None:
        self.config, self.spec, self.task, self.seed = config, spec, task, seed
        self.artifacts, self.settings = artifacts, settings

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        return recorded(trial, lambda: self._run(trial))

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        start = time.perf_counter()
        start_trial(trial, self.config.trial_budget)
        model_args, train = split_params(suggest(trial, self.config.space), self.config,
                                         self.spec)
        torch.manual_seed(self.seed)
        model = build_model(self.spec["family"], model_args, tuple(self.spec["input_shape"]),
                            self.spec["num_classes"], self.task.input_dtype)
        single = len(self.config.objectives) == 1
        metric = f"val_{self.task.metric}"

        def report(epoch: int, record: dict[str, float]) -> None:
            if single:
                trial.report(record[metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        result = fit(model, self.task, train, seed=self.seed, progress=False, on_epoch=report)
        trial.set_user_attr("fit_seconds", result.seconds)
        trial.set_user_attr("epochs_run", len(result.history))
        values: list[float] = [result.best_val]
        with tempfile.TemporaryDirectory(prefix="slimkit-trial-") as tmp:
            path = Path(tmp) / MODEL_FILE
            save_model(path, model, {**self.spec, "args": model_args})
            artifact = upload(artifact_store(self.artifacts), path, trial)
            trial.set_user_attr("model_artifact", artifact)
            if "latency" in self.config.objectives:
                values.append(onnx_latency(model, self.task, self.settings, Path(tmp)))
        trial.set_user_attr("trial_seconds", time.perf_counter() - start)
        return values[0] if single else (values[0], values[1])


def directions(config: TuneConfig, task: Task) -> list[str]:
    """The study's directions: the task's for accuracy, minimize for latency."""
    return [task.direction if o == "accuracy" else "minimize" for o in config.objectives]


def study_summary(study: optuna.Study, config: TuneConfig) -> dict[str, Any]:
    """Counts, every trial, the best trial (or the Pareto front) and parameter importances."""
    states = [t.state.name.lower() for t in study.trials]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "counts": {s: states.count(s) for s in sorted(set(states))},
        "history": [{"number": t.number, "state": t.state.name.lower(),
                     "values": t.values, "params": t.params,
                     "fit_seconds": t.user_attrs.get("fit_seconds"),
                     "trial_seconds": t.user_attrs.get("trial_seconds")}
                    for t in study.trials],
    }
    if len(config.objectives) == 1:
        best = study.best_trial
        summary.update(best_params=best.params, best_value=best.value, best_trial=best.number)
    else:
        summary["pareto_trials"] = [{"number": t.number, "values": t.values, "params": t.params}
                                    for t in study.best_trials]
    try:
        target = None if len(config.objectives) == 1 else (lambda t: t.values[0])
        with warnings.catch_warnings():  # "too few trials": the importances say so (equal)
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study, target=target)
        summary["importances"] = {k: round(v, 6) for k, v in importances.items()}
    except Exception:  # fewer than two finished trials, a single parameter value, ...
        summary["importances"] = {}
    return summary


def open_study(config: TuneConfig, context: Context, spec: dict[str, Any], name: str
               ) -> optuna.Study:
    """The step's study, created once; its attributes let any worker run trials."""
    url = context.storage or default_url(context.run_dir)
    storage = open_storage(url)
    study = optuna.create_study(
        storage=storage, study_name=name, load_if_exists=True,
        sampler=tune_sampler(config, context.seed), pruner=make_pruner(config),
        directions=directions(config, context.task))
    study.set_user_attr("slimkit", {
        "technique": Tune.name, "task": context.task.source or context.task.name,
        "seed": context.seed, "spec": spec,
        "tune": config.model_dump(mode="json"), "artifacts": str(context.run_dir / "artifacts"),
        "profile": context.settings.model_dump()})
    return study


def resume_study(study: optuna.Study, config: TuneConfig, seed: int) -> None:
    """Make a re-opened study go on where it stopped: the trials a killed process left running
    are failed and their parameters queued again, and the sampler continues from its last draw
    (as in an uninterrupted study) instead of drawing the measured points again."""
    recover_interrupted(study)
    study.sampler = tune_sampler(config, seed, study)


def best_text(config: TuneConfig, metric: str) -> Callable[[float], str] | None:
    """How the progress line shows a single-objective study's best value, with its unit."""
    if config.objectives == ["accuracy"]:
        return lambda value: f"val {metric} {fmt_metric(value, metric)}"
    if config.objectives == ["latency"]:
        return lambda value: f"latency {fmt_ms(value)}"
    return None


def best_values(study: optuna.Study, config: TuneConfig) -> dict[str, Any]:
    """The parameters retrained as the candidate."""
    if len(config.objectives) == 1:
        return study.best_trial.params
    # the Pareto trial with the best accuracy is retrained; the whole front is recorded
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(study.best_trials, key=lambda t: sign * t.values[0]).params


@register_technique
class Tune(Technique):
    name = "tune"
    description = "Optuna search over trainer and model hyperparameters, then retrain the best"
    Config = TuneConfig

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: TuneConfig = self.config  # type: ignore[assignment]
        _, spec = context.load_model(parent)
        family = find_family(spec["family"])
        for key in config.space:
            section, _, name = key.partition(".")
            if section == "model" and name not in family.config.model_fields:
                allowed = ", ".join(family.config.model_fields)
                raise TechniqueError(f"tune.space.{key}: {spec['family']!r} has no parameter "
                                     f"{name!r}; allowed: {allowed}")
        # the recipe digest keeps two runs that share a folder name apart in a shared database
        name = f"{context.run_key or context.run_dir.name}-{context.new_id}"
        study = open_study(config, context, spec, name)
        resume_study(study, config, context.seed)
        objective = TuneObjective(config, spec, context.task, context.seed,
                              context.run_dir / "artifacts", context.settings)
        run_trials(study, objective, config, progress=context.progress,
                   shown=best_text(config, context.task.metric))
        study.set_user_attr("finished", True)  # workers looking for a study skip this one
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise TechniqueError(f"tune: no trial completed ({last_failure(study)})")
        model_args, train = split_params(best_values(study, config), config, spec)
        torch.manual_seed(context.seed)
        model = build_model(spec["family"], model_args, context.task.input_shape,
                            context.task.num_classes, context.task.input_dtype)
        result = fit(model, context.task, train, seed=context.seed, progress=context.progress,
                     description=f"{context.new_id} retrain best")
        params = {**config.model_dump(mode="json"), "study": study_summary(study, config),
                  "trained_with": train.model_dump()}
        return context.materialize(model, {**spec, "args": model_args}, params=params,
                                   training=result.to_dict())

    @classmethod
    def join(cls, storage: Any, study_name: str, task: Task, artifacts: Path,
             progress: bool = False) -> dict[str, Any]:
        """Run trials of a tune study another process opened, until its budget is spent."""
        attrs = optuna.load_study(study_name=study_name, storage=storage).user_attrs["slimkit"]
        config = TuneConfig.model_validate(attrs["tune"])
        seed = int(attrs["seed"]) + os.getpid()  # workers must not sample the same points
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=tune_sampler(config, seed), pruner=make_pruner(config))
        objective = TuneObjective(config, attrs["spec"], task, int(attrs["seed"]), artifacts,
                                  ProfileSettings(**attrs.get("profile", {})))
        recover_interrupted(study)
        before = {t.number for t in study.trials}
        run_trials(study, objective, config, progress=progress,
                   shown=best_text(config, task.metric))
        mine = [t for t in study.trials if t.number not in before
                and t.user_attrs.get("worker", "").endswith(f":{os.getpid()}")]
        return {"ran": len(mine), "counted": counted(study), "budget": config.trial_budget}
