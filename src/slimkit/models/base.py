"""Model families: each is a pydantic config plus a builder, registered by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from slimkit.errors import ModelError
from slimkit.registry import Registry
from slimkit.validation import validate


class ModelConfig(BaseModel):
    """Parameters shared by every family. ``dropout`` is a parameter of every model."""

    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability before the head")


Builder = Callable[[Any, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    """A registered family: its config schema, builder, and the input ranks it accepts."""

    name: str
    config: type[ModelConfig]
    build: Builder
    input_ranks: tuple[int, ...]
    description: str


MODELS: Registry[ModelFamily] = Registry("model", ModelError)


def register_model(
    name: str, config: type[ModelConfig], input_ranks: tuple[int, ...], description: str
) -> Callable[[Builder], Builder]:
    """Register ``build(config, input_shape, num_classes) -> nn.Module`` as family ``name``."""

    def decorate(build: Builder) -> Builder:
        MODELS.register(name)(ModelFamily(name, config, build, input_ranks, description))
        return build

    return decorate


def model_config(name: str, args: dict[str, Any] | None = None) -> ModelConfig:
    """Validate ``args`` for family ``name`` (errors name the field: ``model.width: ...``)."""
    family = MODELS.get(name)
    return validate(family.config, dict(args or {}), prefix="model", error=ModelError)


def build_model(
    name: str, args: dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """Build family ``name`` for inputs of ``input_shape`` (without batch) and ``num_classes``."""
    family = MODELS.get(name)
    config = model_config(name, args)
    if len(input_shape) not in family.input_ranks:
        ranks = " or ".join(f"{r}-d" for r in family.input_ranks)
        raise ModelError(
            f"model {name!r} takes {ranks} inputs (channels first), but the task's input shape "
            f"is {tuple(input_shape)}"
        )
    model = family.build(config, tuple(input_shape), num_classes)
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, *input_shape))
    if tuple(out.shape) != (2, num_classes):
        raise ModelError(
            f"model {name!r} outputs shape {tuple(out.shape[1:])}, expected ({num_classes},)"
        )
    return model
