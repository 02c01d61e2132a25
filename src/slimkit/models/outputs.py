"""Models whose forward returns what libraries return: a ``ModelOutput``, a dict or a tuple.

slimkit takes one tensor of it: ``logits`` when there is such a field, else the first tensor
(the first field, key or item). The choice is recorded in the model's spec (``output``) and
``--set model.output=NAME`` (a field or key) or ``=INDEX`` (a tuple item) picks another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ModelError

OUTPUT_ARG = "output"  # the model argument that picks the output; not passed to the family
PREFERRED = "logits"


def _fields(out: Any) -> list[tuple[str, Any]]:
    """(name, value) pairs of a ModelOutput / dict / tuple, in order."""
    if isinstance(out, Mapping):  # ModelOutput is an OrderedDict of its non-None fields
        return [(str(k), v) for k, v in out.items()]
    if isinstance(out, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(out)]
    return []


def choose(out: Any, wanted: str | None, where: str) -> str | None:
    """The name of the output to take from ``out`` (None: ``out`` is a tensor already)."""
    if isinstance(out, torch.Tensor):
        if wanted is not None:
            raise ModelError(f"{where}: model.output={wanted!r}, but the model returns one "
                             f"tensor; drop the setting")
        return None
    fields = _fields(out)
    tensors = [name for name, value in fields if isinstance(value, torch.Tensor)]
    if not tensors:
        got = ", ".join(f"{n}: {type(v).__name__}" for n, v in fields) or type(out).__name__
        raise ModelError(f"{where}: the model's forward returns no tensor ({got}); return "
                         f"a tensor, or a ModelOutput / dict / tuple holding one")
    if wanted is None:
        return PREFERRED if PREFERRED in tensors else tensors[0]
    if wanted not in tensors:
        raise ModelError(f"{where}: model.output={wanted!r} is not a tensor the model returns; "
                         f"choose one of: {', '.join(tensors)}")
    return wanted


def take(out: Any, name: str) -> torch.Tensor:
    """The output ``name`` (a field, key or tuple index) of ``out``."""
    if isinstance(out, Mapping):
        return out[name]
    return out[int(name)]


class SelectOutput(nn.Module):
    """``model`` with its forward reduced to one tensor of what it returns."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.output_name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return take(self.model(x), self.output_name)


def with_output(model: nn.Module, example: torch.Tensor, wanted: str | None,
                where: str) -> nn.Module:
    """``model``, wrapped in ``SelectOutput`` when its forward does not return a tensor."""
    if isinstance(model, SelectOutput):
        return model
    with torch.no_grad():
        out = model.eval()(example)
    name = choose(out, wanted, where)
    return model if name is None else SelectOutput(model, name)


def output_name(model: nn.Module) -> str | None:
    """Which output a wrapped model takes (None: it returns a tensor itself)."""
    return model.output_name if isinstance(model, SelectOutput) else None
