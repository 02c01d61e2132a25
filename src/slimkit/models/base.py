"""Model families: each is a pydantic config plus a builder, registered by name (see
``slimkit.models.build`` for building one, user functions included)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.core.registry import Registry


class ModelConfig(BaseModel):
    """Parameters shared by every family. ``dropout`` is a parameter of every model."""

    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability before the head")


Builder = Callable[[Any, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    """A registered family: its config schema, builder, the input ranks it accepts and the
    dtype of its inputs (``int64``: token ids, 0 = padding), for a family whose output
    width is fixed (a pretrained encoder) that width, and the choices ``arch`` searches for
    each argument (``None``: not searched by its registered space)."""

    name: str
    config: type[ModelConfig]
    build: Builder
    input_ranks: tuple[int, ...]
    description: str
    input_dtype: str = "float32"
    outputs: int | None = None
    search: dict[str, list[Any]] | None = None


MODELS: Registry[ModelFamily] = Registry("model", ModelError)


def register_model(
    name: str, config: type[ModelConfig], input_ranks: tuple[int, ...], description: str,
    input_dtype: str = "float32", outputs: int | None = None,
    search: dict[str, list[Any]] | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``build(config, input_shape, num_classes) -> nn.Module`` as family ``name``
    (``search``: the argument choices ``arch`` tries for it)."""

    def decorate(build: Builder) -> Builder:
        MODELS.register(name)(ModelFamily(name, config, build, input_ranks, description,
                                          input_dtype, outputs, search))
        return build

    return decorate
