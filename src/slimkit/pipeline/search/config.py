"""What a search may combine, what it optimizes and within which accuracy budget."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slimkit.core.errors import SlimkitError
from slimkit.core.objectives import ObjectiveName
from slimkit.techniques import searchable


class SearchConfig(BaseModel):
    """The settings of the search phase (validated where they enter: flags or Python)."""

    model_config = ConfigDict(extra="forbid")

    techniques: list[str] = Field(default_factory=searchable, min_length=1,
                                  description="techniques chains may use (with a role)")
    objective: ObjectiveName = "latency"
    max_accuracy_drop: float = Field(0.01, ge=0, lt=1)
    epochs: int = Field(30, ge=1, le=10000, description="training epochs inside a trial")
    trials: int | None = Field(None, ge=1, description="stop after this many measured chains")
    startup_trials: int = Field(6, ge=1, description="random trials before TPE models the space")
    finalists: int = Field(3, ge=1, le=20, description="best trials measured again in full")

    @field_validator("techniques")
    @classmethod
    def _techniques(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            searchable(value)
        except SlimkitError as err:
            raise ValueError(str(err)) from None
        return sorted(set(value))  # the order does not matter, so it does not change a run
