"""The Technique interface: a registered class with a pydantic config and ``apply``, and the
hooks a search over technique chains reads (``slimkit optimize``).

A chain is one technique per role, in the order of ``ROLES``: first what shrinks the float
model (``compress``), then what lowers its numeric precision (``precision``). A technique with no
role (``role = None``) is used in recipes only. Everything the search needs comes from these hooks,
so a new technique is one module and its registration: nothing else names it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from torch import nn

from slimkit.core.errors import TechniqueError
from slimkit.core.registry import Registry
from slimkit.core.runs import Candidate, artifact_path
from slimkit.measure.timing import ProfileSettings
from slimkit.models import load_model
from slimkit.tasks import Task

Role = Literal["compress", "precision"]
ROLES: tuple[Role, ...] = ("compress", "precision")  # the order of the links of a chain


class TechniqueConfig(BaseModel):
    """Base of every technique's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


Materialize = Callable[..., Candidate]


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
        if "torch" not in candidate.artifacts:
            raise TechniqueError(f"candidate {candidate.id} has no torch model")
        return load_model(artifact_path(self.run_dir, candidate, "torch"))


@dataclass(frozen=True)
class SearchSpec:
    """What a search tells a technique about the candidate a chain link would apply to.

    ``model`` is the parent's model spec (``family``, ``args``, ``input_shape``,
    ``num_classes``, ``input_dtype``); ``train`` the trainer settings (``TrainConfig`` fields)
    for any training a link does; ``kind`` the task's kind.
    """

    model: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    kind: str = "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.get("input_shape", ()))

    @property
    def input_dtype(self) -> str:
        return str(self.model.get("input_dtype", "float32"))

    @property
    def model_args(self) -> dict[str, Any]:
        return dict(self.model.get("args", {}))


@dataclass(frozen=True)
class Seed:
    """A known-good setting a search starts from (Optuna's ``enqueue_trial``), in the
    technique's own parameter names. ``lower_precision``: it is good followed by the first seed
    of the ``precision`` role (int8, say)."""

    params: dict[str, Any]
    lower_precision: bool = False


class PrefixedTrial:
    """An Optuna trial seen by one technique: its ``suggest_*`` names get the technique's
    prefix (``ratio`` -> ``prune.ratio``), so techniques never collide in one study."""

    def __init__(self, trial: Any, prefix: str) -> None:
        self.trial, self.prefix = trial, prefix

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        return self.trial.suggest_float(self.prefix + name, low, high, **kwargs)

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        return self.trial.suggest_int(self.prefix + name, low, high, **kwargs)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.trial.suggest_categorical(self.prefix + name, choices)


class Technique(ABC):
    """A model transformation. Constructors only store the config; work happens in ``apply``.

    Class attributes: ``name`` (the registry key), ``description`` (one line for listings),
    ``Config`` (its parameters) and ``role`` (its place in a searched chain, or None).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[TechniqueConfig]]
    role: ClassVar[Role | None] = None

    def __init__(self, config: TechniqueConfig) -> None:
        self.config = config

    @abstractmethod
    def apply(self, parent: Candidate, context: Context) -> Candidate:
        """Produce a new candidate from ``parent`` (never mutated), measured through
        ``context.materialize``. A user error (a bad parameter for this model) raises a
        ``TechniqueError``; anything else is recorded as a failed step or trial."""

    @classmethod
    def applies(cls, spec: SearchSpec) -> bool:
        """Whether a search may use this technique on a parent described by ``spec``
        (called before sampling; the default: always)."""
        return True

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> TechniqueConfig:
        """A complete, valid ``Config`` for one search trial, its values drawn with
        ``trial.suggest_*`` (names are prefixed with the technique's name for you) and any
        training taken from ``spec.train``. Called only for techniques with a ``role``."""
        raise TechniqueError(f"technique {cls.name!r} cannot be searched (it has no role)")

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        """A few words for one configuration in chain labels: ``prune(0.75)`` shows ``0.75``."""
        return ""

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        """Known-good settings a search starts from, most promising first (default: none)."""
        return []

    @classmethod
    def join(cls, storage: Any, study_name: str, task: Task, artifacts: Path,
             progress: bool = False) -> dict[str, Any]:
        """Run trials of a study this technique opened in shared storage, for ``slimkit
        worker`` (its attributes name the technique); returns ``ran``, ``counted`` and
        ``budget``. Only techniques that run an Optuna study of their own implement it."""
        raise TechniqueError(f"technique {cls.name!r} runs no study a worker can join")


TECHNIQUES: Registry[type[Technique]] = Registry("technique", TechniqueError)


def register_technique(cls: type[Technique]) -> type[Technique]:
    """Class decorator: register ``cls`` under ``cls.name``. A technique with a role must
    implement ``search_space``."""
    if cls.role is not None and cls.search_space.__func__ is Technique.search_space.__func__:
        raise TypeError(f"technique {cls.name!r} has role {cls.role!r} but no search_space")
    return TECHNIQUES.register(cls.name)(cls)


def searchable(names: Sequence[str] | None = None) -> list[str]:
    """The registered techniques a search may chain (those with a role), of ``names`` if given;
    an unknown or role-less name is one clear error."""
    usable = [n for n in TECHNIQUES.names() if TECHNIQUES.get(n).role is not None]
    for name in names or []:
        if name not in usable:
            what = "has no role in a chain" if name in TECHNIQUES else "is unknown"
            raise TechniqueError(f"technique {name!r} {what}; a search chains: "
                                 f"{', '.join(usable)}")
    return list(names) if names else usable
