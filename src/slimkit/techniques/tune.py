"""``tune``: search training and model hyperparameters with Optuna.

Samplers, pruners, storage, heartbeats and the artifact store are Optuna's. slimkit supplies the
objective (train from scratch with the sampled values, reporting the validation metric every
epoch so a pruner can stop bad trials), keeps the budget across resumes and workers
(complete + pruned trials count; failed ones are recorded and retried), and retrains the best
parameters as a measured candidate.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
import torch
from pydantic import Field, field_validator, model_validator

from slimkit.errors import TechniqueError
from slimkit.models import MODELS, build_model
from slimkit.models.io import save_model
from slimkit.studies import (
    artifact_store,
    counted,
    default_url,
    open_storage,
    recover_interrupted,
    upload,
    worker_id,
)
from slimkit.tasks.base import Task
from slimkit.techniques.base import Context, Technique, TechniqueConfig, register_technique
from slimkit.training import TrainConfig, fit
from slimkit.training.progress import CountProgress

if TYPE_CHECKING:  # pipeline sits above techniques
    from slimkit.pipeline.run import Candidate

optuna.logging.set_verbosity(optuna.logging.WARNING)  # slimkit prints its own progress

Number = int | float
OBJECTIVES = ("accuracy", "latency")


class Range(TechniqueConfig):
    """One search dimension: ``choices``, or ``low``/``high`` (``log``, ``step``)."""

    low: Number | None = None
    high: Number | None = None
    log: bool = False
    step: Number | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Range:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices, or both low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (self.low, self.high, self.step) if v is not None)

    def grid(self) -> list[Any] | None:
        """The values a grid search visits, or None for a continuous range."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None and not self.is_int:
            return None
        step = self.step or 1
        count = round((self.high - self.low) / step) + 1  # type: ignore[operator]
        values = [self.low + i * step for i in range(count)]  # type: ignore[operator]
        return [int(v) if self.is_int else round(float(v), 12) for v in values]


def parse_duration(text: str | Number | None) -> float | None:
    """``"15m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or seconds -> seconds."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not parts or not any(parts.groups()):
        raise ValueError(f"expected a duration like 90s, 15m or 1h, got {text!r}")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


class StudyLimits(TechniqueConfig):
    """A study's wall-clock limit (``timeout``), shared by the searching techniques."""

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


class TuneConfig(StudyLimits):
    sampler: Literal["grid", "random", "tpe", "gp", "cmaes", "nsga2"] = "tpe"
    trials: int = Field(20, ge=1, le=100000, description="complete + pruned trials")
    pruner: Literal["none", "median", "hyperband"] = "median"
    space: dict[str, Range] = Field(min_length=1, description="train.<p> / model.<p> ranges")
    objectives: list[Literal["accuracy", "latency"]] = Field(
        default_factory=lambda: ["accuracy"], min_length=1, max_length=2)
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
    def budget(self) -> int:
        """``trials``, or fewer when a grid has fewer points."""
        if self.sampler != "grid":
            return self.trials
        points = 1
        for dim in self.space.values():
            points *= len(dim.grid() or [])
        return min(self.trials, points)


def make_sampler(config: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(
            {k: v.grid() for k, v in config.space.items()}, seed=seed)  # type: ignore[misc]
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if config.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "none" or len(config.objectives) > 1:
        return optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def suggest(trial: optuna.Trial, space: dict[str, Range]) -> dict[str, Any]:
    values = {}
    for key, dim in space.items():
        if dim.choices is not None:
            values[key] = trial.suggest_categorical(key, dim.choices)
        elif dim.is_int:
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high),  # type: ignore[arg-type]
                                            step=int(dim.step or 1), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, float(dim.low), float(dim.high),  # type: ignore[arg-type]
                                              step=dim.step, log=dim.log)
    return values


def split_params(values: dict[str, Any], config: TuneConfig, spec: dict[str, Any]
                 ) -> tuple[dict[str, Any], TrainConfig]:
    """(model args, trainer config) for one set of sampled values."""
    model_args = dict(spec["args"])
    train = config.train.model_dump()
    for key, value in values.items():
        section, _, name = key.partition(".")
        (model_args if section == "model" else train)[name] = value
    return model_args, TrainConfig(**train)


class Objective:
    """Train the parent's family from scratch with one trial's values; works in any worker."""

    def __init__(self, config: TuneConfig, spec: dict[str, Any], task: Task, seed: int,
                 artifacts: Path, settings: Any) -> None:
        self.config, self.spec, self.task, self.seed = config, spec, task, seed
        self.artifacts, self.settings = artifacts, settings

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._run(trial)
        except (optuna.TrialPruned, BudgetReached):
            raise
        except Exception as err:  # recorded on the trial; Optuna marks it failed
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        start = time.perf_counter()
        trial.set_user_attr("worker", worker_id())
        _check_budget(trial, self.config.budget)
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
            path = Path(tmp) / "model.pt"
            save_model(path, model, {**self.spec, "args": model_args})
            self._upload(trial, path)
            if "latency" in self.config.objectives:
                values.append(self._latency(model, Path(tmp)))
        trial.set_user_attr("trial_seconds", time.perf_counter() - start)
        return values[0] if single else (values[0], values[1])

    def _upload(self, trial: optuna.Trial, path: Path) -> None:
        artifact = upload(artifact_store(self.artifacts), path, trial)
        trial.set_user_attr("model_artifact", artifact)

    def _latency(self, model: torch.nn.Module, folder: Path) -> float:
        return onnx_latency(model, self.task, self.settings, folder)


def onnx_latency(model: torch.nn.Module, task: Task, settings: Any, folder: Path) -> float:
    """onnxruntime p50 latency (ms) of ``model``, exported into ``folder`` and measured by the
    profiler every candidate goes through."""
    from slimkit.deploy.export import export_onnx
    from slimkit.measure.profile import profile_onnx

    onnx_path = folder / "model.onnx"
    export_onnx(model, task.input_shape, onnx_path, task.val.x[:64])
    profile = profile_onnx(onnx_path, settings, shape=task.input_shape)
    return float(profile["latency_ms"]["p50"])


class BudgetReached(Exception):
    """Raised by a trial started when the budget was already taken by earlier trials."""


ALIVE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
         optuna.trial.TrialState.RUNNING)


def _check_budget(trial: optuna.Trial, budget: int) -> None:
    """Trial numbers are handed out atomically by the storage, so counting the live trials
    numbered before this one decides, across any number of workers, whether it is within the
    budget. One that is not ends at once as a failed trial marked ``budget_reached``."""
    ahead = [t for t in trial.study.get_trials(deepcopy=False, states=ALIVE)
             if t.number < trial.number]
    if len(ahead) >= budget:
        trial.set_user_attr("budget_reached", True)
        raise BudgetReached(f"{budget} trials already complete or running")


def directions(config: TuneConfig, task: Task) -> list[str]:
    return [task.direction if o == "accuracy" else "minimize" for o in config.objectives]


def _status(study: optuna.Study) -> str:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    states = [t.state.name.lower() for t in done]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("pruned", "fail") if s in states)
    try:
        best = (f"best {study.best_value:.4f}" if len(study.directions) == 1
                else f"{len(study.best_trials)} on the Pareto front")
    except ValueError:  # no complete trial yet
        best = "no complete trial yet"
    return best + (f" ({counts})" if counts else "")


def run_trials(study: optuna.Study, objective: Objective, config: TuneConfig,
               progress: bool = False) -> None:
    """Run trials until ``config.trials`` are complete or pruned (across every worker), the
    timeout passes, or a grid is exhausted. Failed trials are recorded and the search goes on."""
    with CountProgress(config.budget, f"tune {study.study_name}", enabled=progress) as bar:
        bar.set(counted(study), _status(study))
        _run_trials(study, objective, config, lambda: bar.set(counted(study), _status(study)))


def _run_trials(study: optuna.Study, objective: Objective, config: TuneConfig,
                after_trial: Callable[[], None]) -> None:
    deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s
    budget = optuna.study.MaxTrialsCallback(
        config.budget, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    while counted(study) < config.budget:
        failed = [t for t in study.get_trials(deepcopy=False,
                                              states=(optuna.trial.TrialState.FAIL,))
                  if not t.user_attrs.get("budget_reached")]
        if len(failed) >= 2 * config.budget + 10:  # a search where (nearly) nothing works
            raise TechniqueError(f"tune: {len(failed)} trials failed; last error: "
                                 f"{_last_failure(study)}")
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if counted(study) + len(running) >= config.budget:
            time.sleep(1.0)  # the rest of the budget is in flight in other workers
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial is retried
            continue
        study.optimize(objective, n_trials=1, timeout=left, callbacks=[budget],
                       catch=(Exception,), gc_after_trial=False)
        after_trial()


def _last_failure(study: optuna.Study) -> str:
    failed = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
              if not t.user_attrs.get("budget_reached")]
    return str(failed[-1].user_attrs.get("error", "unknown"))[:200] if failed else "-"


def study_summary(study: optuna.Study, config: TuneConfig) -> dict[str, Any]:
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
        summary["importances"] = {
            k: round(v, 6) for k, v in optuna.importance.get_param_importances(
                study, target=target).items()}
    except Exception:  # fewer than two finished trials, a single parameter value, ...
        summary["importances"] = {}
    return summary


def open_study(config: TuneConfig, context: Context, spec: dict[str, Any], name: str
               ) -> optuna.Study:
    url = context.storage or default_url(context.run_dir)
    storage = open_storage(url)
    study = optuna.create_study(
        storage=storage, study_name=name, load_if_exists=True,
        sampler=make_sampler(config, context.seed), pruner=make_pruner(config),
        directions=directions(config, context.task))
    study.set_user_attr("slimkit", {
        "task": context.task.source or context.task.name, "seed": context.seed, "spec": spec,
        "tune": config.model_dump(mode="json"), "artifacts": str(context.run_dir / "artifacts"),
        "profile": context.settings.model_dump()})
    return study


def best_values(study: optuna.Study, config: TuneConfig) -> dict[str, Any]:
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
        family = MODELS.get(spec["family"])
        for key in config.space:
            section, _, name = key.partition(".")
            if section == "model" and name not in family.config.model_fields:
                allowed = ", ".join(family.config.model_fields)
                raise TechniqueError(f"tune.space.{key}: {spec['family']!r} has no parameter "
                                     f"{name!r}; allowed: {allowed}")
        # the recipe digest keeps two runs that share a folder name apart in a shared database
        name = f"{context.run_key or context.run_dir.name}-{context.new_id}"
        study = open_study(config, context, spec, name)
        recover_interrupted(study)
        objective = Objective(config, spec, context.task, context.seed,
                              context.run_dir / "artifacts", context.settings)
        run_trials(study, objective, config, progress=context.progress)
        study.set_user_attr("finished", True)  # workers looking for a study skip this one
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise TechniqueError(f"tune: no trial completed ({_last_failure(study)})")
        model_args, train = split_params(best_values(study, config), config, spec)
        torch.manual_seed(context.seed)
        model = build_model(spec["family"], model_args, context.task.input_shape,
                            context.task.num_classes, context.task.input_dtype)
        result = fit(model, context.task, train, seed=context.seed, progress=context.progress,
                     description=f"{context.new_id} retrain best")
        params = {**config.model_dump(mode="json"), "study": study_summary(study, config)}
        return context.materialize(model, {**spec, "args": model_args}, params=params,
                                   training=result.to_dict())
