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


def get_family(name: str) -> ModelFamily:
    """The family ``name``: registered, or a user's ``file.py:fn`` / ``module:fn``."""
    from slimkit.models.user import family

    return family(name)


def model_config(name: str, args: dict[str, Any] | None = None) -> ModelConfig:
    """Validate ``args`` for family ``name`` (errors name the field: ``model.width: ...``)."""
    family = get_family(name)
    from slimkit.models.user import check_args, is_user_function

    if is_user_function(name):  # its signature decides
        check_args(name, dict(args or {}))
    return validate(family.config, dict(args or {}), prefix="model", error=ModelError)


def build_model(
    name: str, args: dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int,
    input_dtype: str = "float32",
) -> nn.Module:
    """Build family ``name`` for inputs of ``input_shape`` (without batch) and ``num_classes``
    outputs, and check that it maps a batch of such inputs to ``(batch, num_classes)``."""
    family = get_family(name)
    config = model_config(name, args)
    if len(input_shape) not in family.input_ranks:
        ranks = " or ".join(f"{r}-d" for r in family.input_ranks)
        raise ModelError(
            f"model {name!r} takes {ranks} inputs (channels first), but the task's input shape "
            f"is {tuple(input_shape)}"
        )
    model = family.build(config, tuple(input_shape), num_classes)
    example = torch.ones(2, *input_shape, dtype=getattr(torch, input_dtype))
    try:
        with torch.no_grad():
            out = model.eval()(example)
    except Exception as err:
        from slimkit.usercode import describe

        raise ModelError(f"model {name!r} fails on a batch of the task's inputs "
                         f"{tuple(example.shape)} {input_dtype}: {describe(err)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model {name!r} outputs {got} per sample, expected ({num_classes},) "
                         f"(the task's number of outputs)")
    return model
