"""Model families that are not registered by name: a user's function (``file.py:fn`` or
``package.module:fn``), a Hugging Face folder (``hf:PATH``, see ``slimkit.models.hf``) or a
model object handed to the Python API."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.core.usercode import accepted, call, is_reference, load_function
from slimkit.models.base import MODELS, ModelConfig, ModelFamily
from slimkit.models.hf import hf_family, is_hf

ANY_RANK = (1, 2, 3, 4, 5)
SHAPE_ARGS = ("input_shape", "num_outputs", "num_classes")
OBJECT_PREFIX = "python:"  # model objects of this process (Python API)


class UserModelConfig(BaseModel):
    """The arguments given to a user's model function (``--set model.<name>=value``)."""

    model_config = ConfigDict(extra="allow")


def check_args(ref: str, args: dict[str, Any]) -> None:
    """Refuse ``--set model.*`` arguments the user's function does not take."""
    names, any_kwargs = accepted(load_function(ref, ModelError, "--model"))
    takes = sorted(names - set(SHAPE_ARGS))
    for key in args:
        if key in SHAPE_ARGS:
            raise ModelError(f"model.{key}: set by the task, not by --set")
        if key not in names and not any_kwargs:
            raise ModelError(f"model.{key}: {ref} takes no parameter {key!r}; it takes: "
                             f"{', '.join(takes) or 'none'}")


def user_family(ref: str) -> ModelFamily:
    """A family whose builder calls the user's function with the arguments it declares among
    ``input_shape``, ``num_outputs`` (or ``num_classes``) and ``--set model.*``."""

    def build(config: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        fn = load_function(ref, ModelError, "--model")
        names, _ = accepted(fn)
        given = {"input_shape": tuple(input_shape), "num_outputs": num_outputs,
                 "num_classes": num_outputs}
        kwargs = {k: v for k, v in given.items() if k in names}
        kwargs.update(config.model_dump() if isinstance(config, BaseModel) else dict(config))
        model = call(fn, ref, ModelError, **kwargs)
        if not isinstance(model, nn.Module):
            raise ModelError(f"--model {ref} returned {type(model).__name__}, expected a "
                             f"torch.nn.Module")
        return model

    return ModelFamily(ref, UserModelConfig, build, ANY_RANK, f"your model {ref}")


def register_object(model: nn.Module) -> str:
    """Register a model object (Python API) as a family of this process; returns its name,
    which carries a digest of the weights, so the same model gets the same name."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    digest = hashlib.sha256()
    digest.update(type(model).__qualname__.encode())
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    name = f"{OBJECT_PREFIX}{type(model).__name__}-{digest.hexdigest()[:12]}"
    if name not in MODELS:
        template = copy.deepcopy(model).cpu().eval()

        def build(config: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
            return copy.deepcopy(template)

        MODELS.register(name)(ModelFamily(name, ModelConfig, build, ANY_RANK,
                                          f"the {type(model).__name__} object given"))
    return name


def is_object_family(name: str) -> bool:
    """A family made by ``register_object`` (lives only in its process)."""
    return name.startswith(OBJECT_PREFIX)


def is_user_function(name: str) -> bool:
    """``name`` is a user's ``file.py:fn`` / ``module:fn`` (not a registered family, not a
    Hugging Face folder)."""
    return is_reference(name) and name not in MODELS and not is_hf(name)


def find_family(name: str) -> ModelFamily:
    """The family ``name``: registered, a Hugging Face folder or a user's function."""
    if is_hf(name):
        return hf_family(name)
    return user_family(name) if is_user_function(name) else MODELS.get(name)

