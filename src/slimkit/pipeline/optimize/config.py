"""Everything ``optimize`` does, validated where it enters (command-line flags or Python)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from slimkit.core.durations import parse_duration
from slimkit.core.errors import SlimkitError
from slimkit.core.validation import validate
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.recipe import Recipe, load_recipe
from slimkit.pipeline.search.config import SearchConfig
from slimkit.training import TrainConfig

TUNE_SHARE = 0.35  # the tuning pass stops starting trials after this share of the budget


class OptimizeConfig(SearchConfig):
    """The search's settings plus the task, the baseline, the tuning pass and the budget.

    ``techniques`` None means every technique with a role that applies to the baseline.
    """

    task: str
    data: str | None = None
    metric: str | None = None
    metric_direction: Literal["maximize", "minimize"] | None = None
    model: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    threads: int = Field(1, ge=1, le=256)
    budget: str | float = "20m"
    techniques: list[str] | None = None  # type: ignore[assignment]
    tune_trials: int = Field(4, ge=0, le=1000, description="tuning trials for the baseline")
    profile: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        validate(TrainConfig, value, prefix="train", error=SlimkitError)
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: dict[str, Any]) -> dict[str, Any]:
        validate(ProfileSettings, value, prefix="profile", error=SlimkitError)
        return value

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: str | float) -> str | float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = None
        if seconds is None or seconds <= 0:
            raise ValueError("expected a positive duration like 90s, 20m or 1h")
        return value

    @property
    def budget_s(self) -> float:
        """The budget in seconds."""
        return float(parse_duration(self.budget))  # type: ignore[arg-type]

    def search(self) -> SearchConfig:
        """The settings of the search phase (``techniques`` must be resolved already)."""
        return SearchConfig.model_validate(self.model_dump(include=set(SearchConfig.model_fields)))

    def recipe(self) -> Recipe:
        """The baseline (and its tuning pass) as a recipe: one code path with ``slimkit run``."""
        train = TrainConfig(**self.train)
        steps = []
        if self.tune_trials:
            steps.append({"technique": "tune", "name": "tuned", "params": {
                "trials": self.tune_trials, "train": train.model_dump(),
                "timeout": TUNE_SHARE * self.budget_s,
                "space": {"train.lr": {"low": train.lr / 3, "high": train.lr * 3, "log": True},
                          "train.weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}}}})
        given = {k: v for k, v in (("data", self.data), ("metric", self.metric),
                                   ("metric_direction", self.metric_direction)) if v}
        return load_recipe({
            "version": 1, "task": self.task, **given, "seed": self.seed,
            "threads": self.threads,
            "baseline": {"model": self.model, "model_args": self.model_args,
                         "train": self.train},
            "steps": steps, "constraints": {"max_accuracy_drop": self.max_accuracy_drop},
            "profile": self.profile})

    def digest_fields(self) -> dict[str, Any]:
        """What a resumed run must share; budget, trial cap, finalists and the sampler's
        start-up trials may change."""
        return self.model_dump(mode="json",
                               exclude={"budget", "trials", "finalists", "startup_trials"})
