"""The search-space language of ``tune``: one dimension is ``choices``, or a ``low``/``high``
range (``log``, ``step``); Optuna's ``suggest_*`` draws the values."""

from __future__ import annotations

from typing import Any

import optuna
from pydantic import Field, model_validator

from slimkit.techniques.base import TechniqueConfig

Number = int | float


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

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """This dimension's value for ``trial``, under the parameter name ``name``."""
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.is_int:
            return trial.suggest_int(name, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high),  # type: ignore[arg-type]
                                   step=self.step, log=self.log)


def suggest(trial: optuna.Trial, space: dict[str, Range]) -> dict[str, Any]:
    """One value per dimension of ``space``, named by its key."""
    return {key: dim.suggest(trial, key) for key, dim in space.items()}
