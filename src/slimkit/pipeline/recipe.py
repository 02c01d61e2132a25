"""The recipe file: a versioned YAML description of a run, validated with pydantic.

```yaml
version: 1
task: mnist1d
seed: 0
baseline: {model: cnn1d, model_args: {width: 64}, train: {epochs: 30, lr: 0.003}}
steps:
  - {technique: train, from: baseline, params: {epochs: 5, lr: 0.001}}
constraints: {max_accuracy_drop: 0.01}
```
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slimkit.core.errors import RecipeError, SlimkitError
from slimkit.core.overrides import parse_set
from slimkit.core.usercode import absolute, is_reference, trust
from slimkit.core.validation import describe, validate
from slimkit.measure.timing import ProfileSettings
from slimkit.models import is_hf, model_config
from slimkit.tasks import CUSTOM, TASKS, task_names
from slimkit.techniques import TECHNIQUES
from slimkit.training import TrainConfig

RESERVED = ("baseline", "previous")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BaselineSpec(_Strict):
    model: str | None = Field(None, description="model family [default: the task's]")
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class StepSpec(_Strict):
    technique: str
    name: str | None = None
    from_: str = Field("previous", alias="from")
    params: dict[str, Any] = Field(default_factory=dict)


class Constraints(_Strict):
    max_accuracy_drop: float | None = Field(None, ge=0, lt=1)
    max_latency_ms: float | None = Field(None, gt=0)
    max_size_bytes: int | None = Field(None, gt=0)


class Recipe(_Strict):
    version: Literal[1]
    task: str
    data: str | None = Field(None, description="task custom: your data, file.py:function")
    metric: str | None = Field(
        None, description="the task's metric (accuracy, f1, mse, mae, ...) or file.py:function")
    metric_direction: Literal["maximize", "minimize"] | None = Field(
        None, description="direction of your own metric function")
    model: str | None = Field(None, description="shorthand for baseline.model")
    seed: int = 0
    threads: int = Field(1, ge=1, le=256)
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    steps: list[StepSpec] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)
    profile: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_shorthand(self) -> Recipe:
        if self.model is not None:
            if self.baseline.model is not None and self.baseline.model != self.model:
                raise ValueError("give the model once: model or baseline.model")
            self.baseline.model, self.model = self.model, None
        return self

    def task_source(self) -> dict[str, Any]:
        """How to load this recipe's task (see ``slimkit.tasks.load_task``)."""
        source: dict[str, Any] = {"name": self.task}
        for key, value in (("data", self.data), ("metric", self.metric),
                           ("direction", self.metric_direction)):
            if value is not None:
                source[key] = value
        if self.data is not None and is_hf(self.baseline.model):  # texts: its tokenizer
            source["model"] = self.baseline.model
        return source

    def step_names(self) -> list[str]:
        """The name of every step: its own, or ``step<i>``."""
        return [s.name or f"step{i}" for i, s in enumerate(self.steps)]

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    def digest(self) -> str:
        """Hash of the recipe's content (seed included): a changed recipe has another digest."""
        text = json.dumps(self.canonical(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read(source: str | Path) -> dict[str, Any]:
    path = Path(source)
    if path.is_dir():
        raise RecipeError(f"{path}: is a folder; give a recipe YAML file")
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "cannot parse"
        raise RecipeError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read recipe ({err})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping (version, task, steps, ...), "
                          f"got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b.0.c=value`` overrides to a raw recipe dict (a copy is returned)."""
    data = copy.deepcopy(data)
    for parts, value in parse_set(items):
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {'.'.join(parts)}: {where} is not an index of a "
                                      f"list of {len(node)}")
                key: Any = int(part)
            elif isinstance(node, dict):
                key = part
            else:
                raise RecipeError(f"--set {'.'.join(parts)}: {where} is not a mapping")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
    return data


def _check_refs(recipe: Recipe) -> None:
    names = recipe.step_names()
    seen: list[str] = []
    for i, (step, name) in enumerate(zip(recipe.steps, names, strict=True)):
        if name in RESERVED:
            raise RecipeError(f"steps[{i}].name: {name!r} is reserved; choose another name")
        if name in seen:
            raise RecipeError(f"steps[{i}].name: {name!r} is used by an earlier step")
        ref = step.from_
        if ref not in RESERVED and ref not in seen:
            if ref in names:
                raise RecipeError(f"steps[{i}].from: {ref!r} is this step or a later one, which "
                                  f"would form a cycle; a step starts from an earlier one")
            allowed = ", ".join([*RESERVED, *seen])
            raise RecipeError(f"steps[{i}].from: no step named {ref!r}; use one of: {allowed}")
        seen.append(name)


def _check_sections(recipe: Recipe) -> None:
    if recipe.task not in task_names():
        raise RecipeError(f"task: unknown task {recipe.task!r}; choose one of: "
                          f"{', '.join(task_names())}")
    if recipe.task == CUSTOM and not recipe.data:
        raise RecipeError("data: task custom needs your data function, e.g. "
                          "data: data.py:load_data")
    if recipe.task != CUSTOM and recipe.data:
        raise RecipeError(f"data: is for task custom, not for task {recipe.task!r}")
    default = "" if recipe.task == CUSTOM else TASKS.get(recipe.task).default_model
    family = recipe.baseline.model or default
    if not family:
        raise RecipeError(f"model: task {recipe.task!r} has no default model; give --model "
                          f"(a name from `slimkit models`, or yours: model.py:build_model)")
    try:
        model_config(family, recipe.baseline.model_args)
    except SlimkitError as err:
        msg = str(err).replace("model.", "baseline.model_args.", 1)
        raise RecipeError(msg if "unknown model" not in msg else f"baseline.model: {msg}") from None
    validate(TrainConfig, recipe.baseline.train, prefix="baseline.train", error=RecipeError)
    validate(ProfileSettings, {"threads": recipe.threads, **recipe.profile}, prefix="profile",
             error=RecipeError)
    for i, step in enumerate(recipe.steps):
        if step.technique not in TECHNIQUES:
            raise RecipeError(f"steps[{i}].technique: unknown technique {step.technique!r}; "
                              f"choose one of: {', '.join(TECHNIQUES.names())}")
        config = TECHNIQUES.get(step.technique).Config
        validate(config, step.params, prefix=f"steps[{i}].params", error=RecipeError)


def load_recipe(source: str | Path | dict[str, Any] | Recipe,
                overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; every error names the offending field."""
    if isinstance(source, Recipe):
        if not overrides:
            return source
        source = source.canonical()
    data = dict(source) if isinstance(source, dict) else _read(source)
    data = apply_overrides(data, overrides or [])
    base = Path(source).parent if isinstance(source, (str, Path)) else Path.cwd()
    data = _absolute_refs(data, base)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(describe(err, Recipe)) from None
    _check_sections(recipe)
    _check_refs(recipe)
    return recipe


def _absolute_refs(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``file.py:fn`` references (data, metric, model) made absolute, relative to ``base``
    (the recipe's folder), so a run or a worker finds them from anywhere. The user gave them,
    so this process may run them (``trust``)."""
    data = copy.deepcopy(data)
    for key in ("data", "metric", "model"):
        if isinstance(data.get(key), str) and is_reference(data[key]):
            data[key] = absolute(data[key], base)
    baseline = data.get("baseline")
    if isinstance(baseline, dict) and isinstance(baseline.get("model"), str) and is_reference(
            baseline["model"]):
        baseline["model"] = absolute(baseline["model"], base)
    trust(*(data.get(key) for key in ("data", "metric", "model")),
          baseline.get("model") if isinstance(baseline, dict) else None)
    return data


def technique_config(step: StepSpec) -> BaseModel:
    """The validated config of ``step``'s technique."""
    return TECHNIQUES.get(step.technique).Config.model_validate(step.params)
