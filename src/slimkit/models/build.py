"""Building a model: a registered family, a user's function (``file.py:fn``), a Hugging Face
folder (``hf:PATH``) or a model object given to the Python API, checked against the task's
input and output shapes. A forward that returns a ``ModelOutput``, dict or tuple is reduced to
one tensor (see ``slimkit.models.outputs``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.core.usercode import describe_failure
from slimkit.core.validation import validate
from slimkit.models.base import ModelConfig
from slimkit.models.outputs import OUTPUT_ARG, with_output
from slimkit.models.user import check_args, find_family, is_user_function


def _split_output(args: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    rest = dict(args or {})
    wanted = rest.pop(OUTPUT_ARG, None)
    return (None if wanted is None else str(wanted)), rest


def model_config(name: str, args: dict[str, Any] | None = None) -> ModelConfig:
    """Validate ``args`` for family ``name`` (errors name the field: ``model.width: ...``)."""
    chosen = find_family(name)
    _, rest = _split_output(args)
    if is_user_function(name):  # its signature decides
        check_args(name, rest)
    return validate(chosen.config, rest, prefix="model", error=ModelError)


def model_args(name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated arguments of ``name`` with their defaults (``output`` kept when given)."""
    wanted, _ = _split_output(args)
    dumped = model_config(name, args).model_dump()
    return dumped if wanted is None else {**dumped, OUTPUT_ARG: wanted}


def build_model(
    name: str, args: dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int,
    input_dtype: str = "float32",
) -> nn.Module:
    """Build family ``name`` for inputs of ``input_shape`` (without batch) and ``num_classes``
    outputs, and check that it maps a batch of such inputs to ``(batch, num_classes)``."""
    chosen = find_family(name)
    wanted, _ = _split_output(args)
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
        model = with_output(model, example, wanted, f"model {name!r}")
        with torch.no_grad():
            out = model.eval()(example)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(f"model {name!r} fails on a batch of the task's inputs "
                         f"{tuple(example.shape)} {input_dtype}: {describe_failure(err)}") from None
    if tuple(out.shape) != (2, num_classes):
        raise ModelError(f"model {name!r} outputs {tuple(out.shape[1:])} per sample, expected "
                         f"({num_classes},) (the task's number of outputs)")
    return model
