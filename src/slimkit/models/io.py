"""Saving and loading a model.

A model whose layers still have their family's shapes is saved as weights plus the spec that
rebuilds it (family, args, shapes). A model whose tensors were reshaped (structured pruning), or
a model object given to the Python API, no longer matches a constructor, so the whole module is
pickled into ``module_bytes``. The file itself always loads with ``weights_only=True``; the
pickled module is only unpickled from a run folder slimkit wrote, after importing the user's
model file (named in the spec) so its classes resolve in any process.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.core.atomic import atomic_path
from slimkit.core.errors import StoreError
from slimkit.core.usercode import import_file
from slimkit.models.build import build_model
from slimkit.models.user import is_object_family

MODEL_FORMAT = "slimkit-model/1"


def _fits_family(model: nn.Module, spec: dict[str, Any]) -> bool:
    if is_object_family(spec["family"]):  # lives in its process: keep the whole module
        return False
    try:
        fresh = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                            spec["num_classes"], spec.get("input_dtype", "float32"))
    except Exception:
        return False
    ours, theirs = model.state_dict(), fresh.state_dict()
    return ours.keys() == theirs.keys() and all(
        ours[k].shape == theirs[k].shape for k in ours)


def save_model(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save ``model`` with its spec, atomically (weights only when the family rebuilds it)."""
    payload: dict[str, Any] = {"format": MODEL_FORMAT, **spec}
    if _fits_family(model, spec):
        payload["state_dict"] = model.state_dict()
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        payload["module_bytes"] = buffer.getvalue()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _unpickle(path: Path, data: bytes, family: str) -> nn.Module:
    target = family.rpartition(":")[0]
    if target.endswith(".py"):  # the user's classes live in their file
        import_file(Path(target), StoreError)
    try:
        module = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:
        raise StoreError(f"{path}: cannot rebuild the model ({type(err).__name__}: "
                         f"{str(err)[:200]})") from None
    if not isinstance(module, nn.Module):
        raise StoreError(f"{path}: not a slimkit model file")
    return module


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``; returns (model in eval mode, spec)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: model file is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        payload = None
    if payload is None:  # written before module_bytes: a pickled module
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise StoreError(f"{path}: corrupt model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise StoreError(f"{path}: not a slimkit model file")
    spec = {k: v for k, v in payload.items()
            if k not in ("format", "state_dict", "module", "module_bytes")}
    if "module_bytes" in payload:
        return _unpickle(path, payload["module_bytes"], spec["family"]).eval(), spec
    if "module" in payload:
        if not isinstance(payload["module"], nn.Module):
            raise StoreError(f"{path}: not a slimkit model file")
        return payload["module"].eval(), spec
    model = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                        spec["num_classes"], spec.get("input_dtype", "float32"))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise StoreError(f"{path}: weights do not fit the model ({str(err)[:200]})") from None
    return model.eval(), spec
