"""The Technique interface: a registered class with a pydantic config and ``apply``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import nn

from slimkit.errors import TechniqueError
from slimkit.measure.timing import ProfileSettings
from slimkit.registry import Registry
from slimkit.tasks.base import Task

if TYPE_CHECKING:  # pipeline sits above techniques; only type checkers look up
    from slimkit.pipeline.run import Candidate


class TechniqueConfig(BaseModel):
    """Base of every technique's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


Materialize = Callable[..., "Candidate"]


@dataclass
class Context:
    """What a technique may use besides its parent candidate.

    ``materialize(model, model_spec, params=..., training=..., onnx_source=None)`` saves,
    exports (with the parity check) and measures a new model as the candidate this step
    produces; with ``onnx_source`` that ONNX file (quantized, fp16) is the deployable artifact.
    The engine injects it so that every candidate is measured by the same code.
    """

    task: Task
    run_dir: Path
    seed: int
    settings: ProfileSettings
    progress: bool
    candidates: Mapping[str, Candidate]
    new_id: str
    materialize: Materialize
    constraints: Mapping[str, Any] = field(default_factory=dict)
    storage: str | None = None
    run_key: str = ""

    def load_model(self, candidate: Candidate) -> tuple[nn.Module, dict[str, Any]]:
        """A fresh copy of ``candidate``'s torch model and its spec."""
        from slimkit.models.io import load_model

        if "torch" not in candidate.artifacts:
            raise TechniqueError(f"candidate {candidate.id} has no torch model")
        return load_model(self.run_dir / candidate.artifacts["torch"])


class Technique(ABC):
    """A model transformation. Constructors only store the config; work happens in ``apply``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[TechniqueConfig]]

    def __init__(self, config: TechniqueConfig) -> None:
        self.config = config

    @abstractmethod
    def apply(self, parent: Candidate, context: Context) -> Candidate:
        """Produce a new candidate from ``parent`` (never mutated)."""

    @classmethod
    def search_space(cls, trial: Any, spec: dict[str, Any]) -> dict[str, Any] | None:
        """This technique's parameters sampled for one search trial (Optuna
        ``trial.suggest_*``, names prefixed with the technique's name), for a parent whose model
        spec is ``spec``; None when the technique has nothing to search or does not apply."""
        return None


TECHNIQUES: Registry[type[Technique]] = Registry("technique", TechniqueError)


def register_technique(cls: type[Technique]) -> type[Technique]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    return TECHNIQUES.register(cls.name)(cls)
