"""Building a model: a registered family, a user's function (``file.py:fn``) or a model object
given to the Python API, checked against the task's input and output shapes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.core.usercode import describe_failure
from slimkit.core.validation import validate
from slimkit.models.base import ModelConfig
from slimkit.models.user import check_args, find_family, is_user_function


def model_config(name: str, args: dict[str, Any] | None = None) -> ModelConfig:
    """Validate ``args`` for family ``name`` (errors name the field: ``model.width: ...``)."""
    chosen = find_family(name)
    if is_user_function(name):  # its signature decides
        check_args(name, dict(args or {}))
    return validate(chosen.config, dict(args or {}), prefix="model", error=ModelError)


def build_model(
    name: str, args: dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int,
    input_dtype: str = "float32",
) -> nn.Module:
    """Build family ``name`` for inputs of ``input_shape`` (without batch) and ``num_classes``
    outputs, and check that it maps a batch of such inputs to ``(batch, num_classes)``."""
    chosen = find_family(name)
    config = model_config(name, args)
    if len(input_shape) not in chosen.input_ranks:
        ranks = " or ".join(f"{r}-d" for r in chosen.input_ranks)
        raise ModelError(
            f"model {name!r} takes {ranks} inputs (channels first), but the task's input shape "
            f"is {tuple(input_shape)}"
        )
    model = chosen.build(config, tuple(input_shape), num_classes)
    example = torch.ones(2, *input_shape, dtype=getattr(torch, input_dtype))
    try:
        with torch.no_grad():
            out = model.eval()(example)
    except Exception as err:
        raise ModelError(f"model {name!r} fails on a batch of the task's inputs "
                         f"{tuple(example.shape)} {input_dtype}: {describe_failure(err)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model {name!r} outputs {got} per sample, expected ({num_classes},) "
                         f"(the task's number of outputs)")
    return model
